/**
 * Forwarding grants with iptables (forward.ts): chains `<NAME>_GW_PRE` (nat, jumped to from
 * PREROUTING rule 1) and `<NAME>_GW_FWD` (filter, FORWARD rule 1), in iptables and ip6tables,
 * rules carrying `spa_exp_<unix s>` as the input chain's grants do (iptables.ts):
 *
 *   -A SPA_GW_PRE -s 198.51.100.2/32 -p tcp -m tcp --dport 25000 -m comment --comment spa_exp_N -j DNAT --to-destination 203.0.113.10:22
 *   -A SPA_GW_FWD -m conntrack --ctstate RELATED,ESTABLISHED -m conntrack --ctstate DNAT -j ACCEPT
 *   -A SPA_GW_FWD -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
 *   -A SPA_GW_FWD -s 198.51.100.2/32 -d 203.0.113.10/32 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment spa_exp_N -j ACCEPT
 *   -A SPA_GW_FWD -d 203.0.113.0/24 -m comment --comment spa_gw_protect -j DROP
 *
 * The kernel knows nothing of the expiry there: sweep() must run on a timer (the daemon's, as
 * for input grants), init() drops expired rules a crash left behind, and shutdown() removes the
 * grants since nobody would sweep them.
 */
import type { Family } from '../../protocol/address.js';
import {
  type ActiveForward,
  type Forwarder,
  type ForwardGrantRequest,
  type NormalForwardOptions,
  normalizeForward,
} from './forward.js';
import { bothFamilies, EXP_PREFIX, IPT_TOOLS, removeEachFamily, WAIT } from './iptables.js';
import { firstLine } from './output.js';
import { Serial } from './serial.js';
import { type FirewallExec, FirewallError, type Proto } from './types.js';
import { normalizeSource } from './validate.js';

export const GW_PROTECT_COMMENT = 'spa_gw_protect';

export function iptGwChains(name: string): { pre: string; fwd: string } {
  const up = name.toUpperCase();
  return { pre: `${up}_GW_PRE`, fwd: `${up}_GW_FWD` };
}

interface IptForward extends ActiveForward {
  family: Family;
  exp: number;
}

function hostPort(family: Family, host: string, port: number): string {
  return family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export function iptPreSpec(g: IptForward): string {
  const m = IPT_TOOLS[g.family].max;
  const head = `-s ${g.source}/${m} -p ${g.proto} -m ${g.proto} --dport ${g.externalPort} -m comment --comment ${EXP_PREFIX}${g.exp}`;
  return g.host === 'local'
    ? `${head} -j REDIRECT --to-ports ${g.port}`
    : `${head} -j DNAT --to-destination ${hostPort(g.family, g.host, g.port)}`;
}

export function iptFwdSpec(g: IptForward): string {
  const m = IPT_TOOLS[g.family].max;
  return `-s ${g.source}/${m} -d ${g.host}/${m} -p ${g.proto} -m ${g.proto} --dport ${g.port} -m conntrack --ctstate DNAT -m comment --comment ${EXP_PREFIX}${g.exp} -j ACCEPT`;
}

export const GW_ESTABLISHED_DNAT =
  '-m conntrack --ctstate RELATED,ESTABLISHED -m conntrack --ctstate DNAT -j ACCEPT';
export const GW_ESTABLISHED = '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN';

/** Our grants as `iptables -t nat -S <pre>` prints them (the forward rules pair up by key). */
export function parseIptForward(
  text: string,
  chain: string,
  family: Family,
): { grants: IptForward[]; jumps: number; jumpFirst: boolean; exists: boolean } {
  const re = new RegExp(
    `^-A ${chain} -s (\\S+)/(\\d+) -p (tcp|udp) -m (?:tcp|udp) --dport (\\d+) -m comment --comment "?${EXP_PREFIX}(\\d+)"? -j (?:DNAT --to-destination (?:\\[([0-9a-f:.]+)\\]|([0-9.]+)):(\\d+)|REDIRECT --to-ports (\\d+))$`,
  );
  const grants: IptForward[] = [];
  let jumps = 0;
  let jumpFirst = false;
  let seen = false;
  let exists = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === `-N ${chain}`) exists = true;
    if (line.startsWith('-A PREROUTING')) {
      const isJump = line === `-A PREROUTING -j ${chain}`;
      if (isJump) jumps++;
      if (!seen) jumpFirst = isJump;
      seen = true;
    }
    const m = re.exec(line);
    if (!m) continue;
    const [, src = '', , proto, ext, exp, h6, h4, dport, rport] = m;
    const host = h6 ?? h4 ?? 'local';
    grants.push({
      family,
      source: normalizeSource(src).source,
      proto: proto as Proto,
      externalPort: Number(ext),
      host,
      port: Number(dport ?? rport),
      exp: Number(exp),
      expiresAt: Number(exp) * 1000,
    });
  }
  return { grants, jumps, jumpFirst, exists };
}

export class IptForwarder implements Forwarder {
  readonly backend = 'iptables' as const;
  readonly #o: NormalForwardOptions;
  readonly #runner: FirewallExec;
  readonly #serial = new Serial();
  readonly #chains: { pre: string; fwd: string };
  #fixed: Record<Family, string | null> = { 4: null, 6: null };

  constructor(o: NormalForwardOptions, runner: FirewallExec) {
    this.#o = o;
    this.#runner = runner;
    this.#chains = iptGwChains(o.name);
  }

  async #run(cmd: string, args: readonly string[], input?: string): Promise<string> {
    const r = await this.#runner.run(cmd, args, input);
    if (r.code !== 0)
      throw new FirewallError(`${cmd} ${args.join(' ')}: exit ${r.code}: ${firstLine(r.stderr)}`);
    return r.stdout;
  }

  async #nat(family: Family): Promise<ReturnType<typeof parseIptForward>> {
    return parseIptForward(
      await this.#run(IPT_TOOLS[family].list, [...WAIT, '-t', 'nat', '-S']),
      this.#chains.pre,
      family,
    );
  }

  /** Our forward chain's fixed lines and the FORWARD jumps. */
  async #filter(
    family: Family,
  ): Promise<{ fixed: string[]; jumps: number; jumpFirst: boolean; lines: string[] }> {
    const out = await this.#run(IPT_TOOLS[family].list, [...WAIT, '-t', 'filter', '-S']);
    const c = this.#chains.fwd;
    let jumps = 0;
    let jumpFirst = false;
    let seen = false;
    const fixed: string[] = [];
    const lines: string[] = [];
    for (const raw of out.split('\n')) {
      const line = raw.trim();
      if (line.startsWith('-A FORWARD')) {
        const isJump = line === `-A FORWARD -j ${c}`;
        if (isJump) jumps++;
        if (!seen) jumpFirst = isJump;
        seen = true;
      } else if (line.startsWith(`-A ${c} `)) {
        lines.push(line);
        if (!line.includes(`--comment ${EXP_PREFIX}`) && !line.includes(`--comment "${EXP_PREFIX}`))
          fixed.push(line);
      }
    }
    return { fixed, jumps, jumpFirst, lines };
  }

  async #restore(family: Family, script: string): Promise<void> {
    await this.#run(IPT_TOOLS[family].restore, [...WAIT, '--noflush'], script);
  }

  init(): Promise<void> {
    return this.#serial.run(async () => {
      const now = this.#o.now();
      const { pre, fwd } = this.#chains;
      for (const family of [4, 6] as const) {
        const nat = await this.#nat(family);
        const filter = await this.#filter(family);
        const keep = nat.grants.filter((g) => g.exp * 1000 > now);
        const natLines = [
          '*nat',
          `:${pre} - [0:0]`,
          `-F ${pre}`,
          ...keep.map((g) => `-A ${pre} ${iptPreSpec(g)}`),
        ];
        if (!(nat.jumps === 1 && nat.jumpFirst)) {
          for (let i = 0; i < nat.jumps; i++) natLines.push(`-D PREROUTING -j ${pre}`);
          natLines.push(`-I PREROUTING 1 -j ${pre}`);
        }
        natLines.push('COMMIT', '');
        const fLines = [
          '*filter',
          `:${fwd} - [0:0]`,
          `-F ${fwd}`,
          `-A ${fwd} ${GW_ESTABLISHED_DNAT}`,
          `-A ${fwd} ${GW_ESTABLISHED}`,
        ];
        for (const g of keep) if (g.host !== 'local') fLines.push(`-A ${fwd} ${iptFwdSpec(g)}`);
        for (const c of this.#o.internal.filter((x) => x.family === family)) {
          fLines.push(`-A ${fwd} -d ${c.text} -m comment --comment ${GW_PROTECT_COMMENT} -j DROP`);
        }
        if (!(filter.jumps === 1 && filter.jumpFirst)) {
          for (let i = 0; i < filter.jumps; i++) fLines.push(`-D FORWARD -j ${fwd}`);
          fLines.push(`-I FORWARD 1 -j ${fwd}`);
        }
        fLines.push('COMMIT', '');
        await this.#restore(family, natLines.join('\n') + fLines.join('\n'));
        const after = await this.#filter(family);
        this.#fixed[family] = after.fixed.join('\n');
      }
    });
  }

  async grant(req: ForwardGrantRequest): Promise<void> {
    const g0 = normalizeForward(req);
    await this.#serial.run(async () => {
      const exp = Math.ceil((this.#o.now() + g0.timeoutSeconds * 1000) / 1000);
      const g: IptForward = { ...g0, exp, expiresAt: exp * 1000 };
      const nat = await this.#nat(g.family);
      const old = nat.grants.filter(
        (o) => o.source === g.source && o.proto === g.proto && o.externalPort === g.externalPort,
      );
      const { pre, fwd } = this.#chains;
      const natLines = [
        '*nat',
        ...old.map((o) => `-D ${pre} ${iptPreSpec(o)}`),
        `-I ${pre} 1 ${iptPreSpec(g)}`,
        'COMMIT',
      ];
      const fLines = [
        '*filter',
        ...old.filter((o) => o.host !== 'local').map((o) => `-D ${fwd} ${iptFwdSpec(o)}`),
      ];
      if (g.host !== 'local') fLines.push(`-I ${fwd} 3 ${iptFwdSpec(g)}`);
      fLines.push('COMMIT', '');
      await this.#restore(g.family, `${natLines.join('\n')}\n${fLines.join('\n')}`);
    });
  }

  list(): Promise<ActiveForward[]> {
    return this.#serial.run(async () => {
      const out: ActiveForward[] = [];
      for (const family of [4, 6] as const) {
        for (const g of (await this.#nat(family)).grants) {
          out.push({
            source: g.source,
            proto: g.proto,
            externalPort: g.externalPort,
            host: g.host,
            port: g.port,
            expiresAt: g.expiresAt,
          });
        }
      }
      return out;
    });
  }

  #removeWhere(pick: (g: IptForward) => boolean): Promise<number> {
    const { pre, fwd } = this.#chains;
    return this.#serial.run(() =>
      removeEachFamily(
        async (family) => (await this.#nat(family)).grants,
        pick,
        async (family, gone) => {
          const filter = await this.#filter(family);
          const fwdGone = gone.filter(
            (g) => g.host !== 'local' && filter.lines.includes(`-A ${fwd} ${iptFwdSpec(g)}`),
          );
          const script = [
            '*nat',
            ...gone.map((g) => `-D ${pre} ${iptPreSpec(g)}`),
            'COMMIT',
            '*filter',
            ...fwdGone.map((g) => `-D ${fwd} ${iptFwdSpec(g)}`),
            'COMMIT',
            '',
          ];
          await this.#restore(family, script.join('\n'));
        },
      ),
    );
  }

  async flush(): Promise<void> {
    await this.#removeWhere(() => true);
  }

  sweep(now: number): Promise<number> {
    return this.#removeWhere((g) => g.exp * 1000 <= now);
  }

  healthy(): Promise<boolean> {
    return this.#serial.run(() =>
      bothFamilies(async (family) => {
        const nat = await this.#nat(family);
        const filter = await this.#filter(family);
        if (!nat.exists || nat.jumps !== 1 || !nat.jumpFirst) return false;
        return filter.jumps === 1 && filter.jumpFirst && filter.fixed.join('\n') === this.#fixed[family];
      }),
    );
  }

  async shutdown(opts: { removeProtections: boolean }): Promise<void> {
    if (!opts.removeProtections) {
      await this.flush();
      return;
    }
    await this.#serial.run(async () => {
      const { pre, fwd } = this.#chains;
      for (const family of [4, 6] as const) {
        const nat = await this.#nat(family);
        const filter = await this.#filter(family);
        const lines = ['*nat'];
        for (let i = 0; i < nat.jumps; i++) lines.push(`-D PREROUTING -j ${pre}`);
        if (nat.exists) lines.push(`-F ${pre}`, `-X ${pre}`);
        lines.push('COMMIT', '*filter');
        for (let i = 0; i < filter.jumps; i++) lines.push(`-D FORWARD -j ${fwd}`);
        if (filter.lines.length > 0 || this.#fixed[family] !== null)
          lines.push(`:${fwd} - [0:0]`, `-F ${fwd}`, `-X ${fwd}`);
        lines.push('COMMIT', '');
        await this.#restore(family, lines.join('\n'));
        this.#fixed[family] = null;
      }
    });
  }
}
