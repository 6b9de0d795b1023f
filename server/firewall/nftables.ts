/**
 * nftables backend: a table of our own, `inet <name>` (default `inet spa`); no other table is
 * read or written. Its ruleset and the parser of its listing: nft-ruleset.ts.
 *
 * A grant is one `nft -f -` transaction adding `source . proto . port timeout Ns` elements (grants
 * that wait for their turn share one; grant()): the kernel stops matching them when the timeout
 * runs out, with or without spad. Re-adding an
 * element refreshes its timeout only on kernels >= 6.10; init() finds out with a scratch set
 * (`probe`, deleted again) and otherwise grants with add+delete+add, which refreshes everywhere
 * but costs about three times as much. An accept here only ends our chain; a drop in another
 * table still wins, so the protected ports must not be dropped elsewhere. Priority -10 runs our
 * drop before the usual filter chains at 0.
 *
 * In pcap mode the same grant transaction puts the source in the returning lane
 * (nft-ruleset.ts): its datagrams to the SPA port then also reach the monitor's socket there.
 *
 * init() is one transaction too: `add` (create if missing) the table, sets, counter and chain,
 * then flush and refill the chain. The allow sets are not flushed, so a restarted spad keeps its
 * users' windows. If leftovers are incompatible (say, a set of another type) the table is
 * deleted and rebuilt in one transaction, carrying the live grants over.
 */
import { firstLine } from './output.js';
import { Serial } from './serial.js';
import type { ActiveGrant, Firewall, FirewallExec, GrantRequest } from './types.js';
import { FirewallError } from './types.js';
import { type NormalGrant, type NormalOptions, normalizeGrant, normalizeSource } from './validate.js';
import {
  allowSet,
  nftDeleteScript,
  nftFlushScript,
  nftGrantScript,
  nftInitScript,
  nftProbeScript,
  type NftRefresh,
  nftReturningScript,
  nftRules,
  type NftTableView,
  parseNftTable,
  PROBE_SET,
} from './nft-ruleset.js';

/** Grants sent in one transaction at most (nftables.ts grant()). */
export const GRANT_BATCH_MAX = 32;

interface PendingGrant {
  g: NormalGrant;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A source's returning-lane element is re-added by a grant at most this often, ms. */
export const LANE_REFRESH_MS = 60_000;
const LANE_REFRESHED_MAX = 4096;

export class NftablesFirewall implements Firewall {
  readonly backend = 'nftables' as const;
  #o: NormalOptions;
  readonly #runner: FirewallExec;
  readonly #serial = new Serial();
  #fingerprint: string | null = null;
  /** Source → when a grant last refreshed its returning-lane element (ms); cleared by init(). */
  readonly #laneRefreshed = new Map<string, number>();
  /** The batch of grants waiting for their turn (grant()), or null. */
  #waiting: PendingGrant[] | null = null;
  /** Until init() has probed the kernel, the form that works everywhere. */
  #refresh: NftRefresh = 'readd';
  readonly #forceRefresh: NftRefresh | undefined;

  /** `refresh` skips the probe (tests use it to run the add+delete+add form on any kernel). */
  constructor(o: NormalOptions, runner: FirewallExec, opts: { refresh?: NftRefresh } = {}) {
    this.#o = o;
    this.#runner = runner;
    this.#forceRefresh = opts.refresh;
  }

  /** How re-grants refresh timeouts on this kernel (known after init). */
  get refreshMode(): NftRefresh {
    return this.#refresh;
  }

  async #nft(args: readonly string[], input?: string): Promise<string> {
    const r = await this.#runner.run('nft', args, input);
    if (r.code !== 0) {
      throw new FirewallError(`nft ${args.join(' ')}: exit ${r.code}: ${firstLine(r.stderr)}`);
    }
    return r.stdout;
  }

  #script(s: string): Promise<string> {
    return this.#nft(['-f', '-'], s);
  }

  /** null when the table does not exist. */
  async #view(terse = false): Promise<NftTableView | null> {
    const args = [...(terse ? ['-t'] : []), '-j', 'list', 'table', 'inet', this.#o.name];
    const r = await this.#runner.run('nft', args);
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return null;
      throw new FirewallError(`nft ${args.join(' ')}: exit ${r.code}: ${firstLine(r.stderr)}`);
    }
    return parseNftTable(r.stdout, this.#o.name, this.#o.now());
  }

  init(): Promise<void> {
    return this.#serial.run(async () => {
      const o = this.#o;
      // the table may be rebuilt below: every lane element is refreshed at its next grant
      this.#laneRefreshed.clear();
      const script = nftInitScript(o);
      try {
        await this.#script(script);
      } catch (first) {
        let carried: ActiveGrant[] = [];
        try {
          carried = (await this.#view())?.grants ?? [];
        } catch {
          carried = [];
        }
        const now = o.now();
        let readd = '';
        for (const g of carried) {
          const left = Math.floor((g.expiresAt - now) / 1000);
          if (!Number.isFinite(g.expiresAt) || left < 1) continue;
          const family = g.source.includes(':') ? 6 : 4;
          readd += `add element inet ${o.name} ${allowSet(family)} { ${g.source} . ${g.proto} . ${g.port} timeout ${left}s }\n`;
        }
        try {
          await this.#script(nftDeleteScript(o.name) + script + readd);
        } catch (second) {
          throw new FirewallError(`nft: cannot install table inet ${o.name}: ${(second as Error).message}`, {
            cause: first,
          });
        }
      }
      await this.#script(nftProbeScript(o.name));
      const view = await this.#view();
      if (!view || view.chainRules !== nftRules(o).length) {
        throw new FirewallError(`nft: table inet ${o.name} is not as installed right after init`);
      }
      // Our grants always carry a timeout; an element without one would stay open forever.
      const cleanup = [
        `delete set inet ${o.name} ${PROBE_SET}`,
        ...view.untimed.map((u) => `delete element inet ${o.name} ${allowSet(u.family)} { ${u.key} }`),
      ];
      await this.#script(`${cleanup.join('\n')}\n`);
      this.#refresh = this.#forceRefresh ?? (view.probeExpires > 3600 ? 'add' : 'readd');
      this.#fingerprint = view.fingerprint;
    });
  }

  /**
   * Grants that arrive while another change is running wait in one batch, sent as one
   * transaction when their turn comes (one nft line, one reply): in a burst of knocks that is
   * one transaction for many grants instead of one each. A batch nft refuses is sent again grant
   * by grant, so each grant still succeeds or fails on its own; every script is safe to apply
   * twice.
   */
  async grant(req: GrantRequest): Promise<void> {
    const g = normalizeGrant(req, this.#o.protect);
    return new Promise((resolve, reject) => {
      const waiting = this.#waiting;
      if (waiting && waiting.length < GRANT_BATCH_MAX) {
        waiting.push({ g, resolve, reject });
        return;
      }
      const batch: PendingGrant[] = [{ g, resolve, reject }];
      this.#waiting = batch;
      void this.#serial.run(async () => {
        if (this.#waiting === batch) this.#waiting = null;
        await this.#grantBatch(batch);
      });
    });
  }

  async #grantBatch(batch: readonly PendingGrant[]): Promise<void> {
    const now = this.#o.now();
    // the lane's element is refreshed at most once a minute per source: its 15 minutes hardly
    // move, and every byte of a line costs the nft shell a read(2)
    const lanes = new Set<string>();
    const withLane = batch.map(({ g }) => {
      const last = this.#laneRefreshed.get(g.source);
      const returning =
        this.#o.stealthPort !== null &&
        !lanes.has(g.source) &&
        (last === undefined || now - last >= LANE_REFRESH_MS);
      if (returning) lanes.add(g.source);
      return returning;
    });
    const scripts = batch.map(({ g }, i) => nftGrantScript(this.#o.name, g, this.#refresh, withLane[i]));
    const laneDone = (source: string): void => {
      this.#laneRefreshed.delete(source);
      this.#laneRefreshed.set(source, now);
      if (this.#laneRefreshed.size > LANE_REFRESHED_MAX) {
        const oldest = this.#laneRefreshed.keys().next().value;
        if (oldest !== undefined) this.#laneRefreshed.delete(oldest);
      }
    };
    if (batch.length > 1) {
      try {
        await this.#script(scripts.join(''));
        for (const source of lanes) laneDone(source);
        for (const p of batch) p.resolve();
        return;
      } catch {
        // one by one below: each grant gets its own answer
      }
    }
    for (const [i, p] of batch.entries()) {
      try {
        await this.#script(scripts[i] as string);
        if (withLane[i]) laneDone(p.g.source);
        p.resolve();
      } catch (err) {
        p.reject(err);
      }
    }
  }

  async returning(sources: readonly { source: string; seconds: number }[]): Promise<void> {
    // a replay entry with an address that is not one is skipped, not a reason to restore none
    const normal = sources.flatMap((s) => {
      try {
        return [{ ...normalizeSource(s.source), seconds: s.seconds }];
      } catch {
        return [];
      }
    });
    const script = nftReturningScript(this.#o, normal);
    if (script !== '') await this.#serial.run(() => this.#script(script));
  }

  list(): Promise<ActiveGrant[]> {
    return this.#serial.run(async () => {
      // No table, no grants (healthy() is what reports the table missing), as with iptables.
      return (await this.#view())?.grants ?? [];
    });
  }

  flush(): Promise<void> {
    return this.#serial.run(async () => {
      await this.#script(nftFlushScript(this.#o.name));
    });
  }

  sweep(_now: number): Promise<number> {
    return Promise.resolve(0);
  }

  healthy(): Promise<boolean> {
    return this.#serial.run(async () => {
      if (this.#fingerprint === null) return false;
      try {
        const view = await this.#view(true);
        return view !== null && view.fingerprint === this.#fingerprint;
      } catch {
        return false;
      }
    });
  }

  shutdown(opts: { removeProtections: boolean }): Promise<void> {
    return this.#serial.run(async () => {
      try {
        if (!opts.removeProtections) return;
        await this.#script(nftDeleteScript(this.#o.name));
        this.#fingerprint = null;
      } finally {
        this.#runner.close?.();
      }
    });
  }
}
