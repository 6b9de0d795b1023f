/**
 * iptables backend (iptables and ip6tables, legacy or nf_tables flavour): a chain of our own,
 * `<NAME>_INPUT` (default `SPA_INPUT`), jumped to from rule 1 of INPUT, exactly once.
 *
 *   -A INPUT -j SPA_INPUT                                                   (position 1)
 *   -A SPA_INPUT -p udp -m udp --dport 62201 -m comment --comment spa_stealth -j DROP  (pcap mode)
 *   -A SPA_INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
 *   -A SPA_INPUT -s 198.51.100.2/32 -p tcp -m tcp --dport 22 -m comment --comment spa_exp_1700000030 -j ACCEPT
 *   -A SPA_INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT          (always_allow x protect)
 *   -A SPA_INPUT -p tcp -m tcp --dport 22 -m comment --comment spa_protect -j DROP   (always last)
 *
 * Everything we do not decide RETURNs to INPUT, so the admin's own rules still apply to it.
 * Grants and always_allow ACCEPT, as fwknop's do, so they work under an INPUT policy of DROP.
 * In pcap mode (`stealthPort`) the SPA port is dropped for everyone as the chain's first rule,
 * in iptables and ip6tables alike: nothing listens there, so otherwise the kernel would answer
 * each probe with ICMP port unreachable; libpcap sees the knocks before netfilter anyway.
 * Grants go in right after the established rule (position 2, or 3 after the stealth drop),
 * above the drops. Expiry is the unix second in the comment; the kernel knows nothing of it, so
 * sweep() must run on a timer, and init() drops expired rules a crash left behind.
 *
 * Every change is one `iptables-restore --noflush` transaction (atomic in both flavours), and
 * rules are deleted by their full spec, never by number, so an admin's edit between our listing
 * and our change cannot make us delete the wrong rule. `-w 5` waits for the xtables lock.
 */
import type { Family } from '../../protocol/address.js';
import { Serial } from './serial.js';
import type { ActiveGrant, Firewall, FirewallExec, GrantRequest, Proto } from './types.js';
import { firstLine } from './output.js';
import { FirewallError } from './types.js';
import { type NormalOptions, normalizeGrant, normalizeSource } from './validate.js';

export const WAIT = ['-w', '5'] as const;
export const EXP_PREFIX = 'spa_exp_';
export const PROTECT_COMMENT = 'spa_protect';
export const STEALTH_COMMENT = 'spa_stealth';
export const ESTABLISHED_RULE = '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN';

/** The tools per family, and the prefix length of one host. */
export const IPT_TOOLS: Record<Family, { list: string; restore: string; max: number }> = {
  4: { list: 'iptables', restore: 'iptables-restore', max: 32 },
  6: { list: 'ip6tables', restore: 'ip6tables-restore', max: 128 },
};

export function iptChainName(name: string): string {
  return `${name.toUpperCase()}_INPUT`;
}

/** The rule that drops the SPA port for everyone (pcap mode). */
export function stealthSpec(port: number): string {
  return `-p udp -m udp --dport ${port} -m comment --comment ${STEALTH_COMMENT} -j DROP`;
}

/** Where grants are inserted: right after the fixed rules at the head of the chain. */
export function grantPosition(o: NormalOptions): number {
  return o.stealthPort === null ? 2 : 3;
}

export interface IptGrant {
  family: Family;
  source: string;
  proto: Proto;
  port: number;
  /** unix seconds */
  exp: number;
}

export function grantSpec(g: IptGrant): string {
  const max = IPT_TOOLS[g.family].max;
  return `-s ${g.source}/${max} -p ${g.proto} -m ${g.proto} --dport ${g.port} -m comment --comment ${EXP_PREFIX}${g.exp} -j ACCEPT`;
}

/** What `iptables -S` shows of a table, for our chain and INPUT. */
export interface IptView {
  chainExists: boolean;
  grants: IptGrant[];
  /** Our chain's rules other than grants, as printed, in order. */
  fixed: string[];
  /** Exact `-A INPUT -j <chain>` rules. */
  jumps: number;
  /** The first INPUT rule is our jump. */
  jumpFirst: boolean;
}

/**
 * Parses `iptables -S` (whole table) or `iptables -S <chain>` output. A line of our chain counts
 * as a grant only when it has exactly the shape grantSpec() writes.
 */
export function parseIptList(text: string, chain: string, family: Family): IptView {
  const view: IptView = { chainExists: false, grants: [], fixed: [], jumps: 0, jumpFirst: false };
  const grantRe = new RegExp(
    `^-A ${chain} -s (\\S+)/(\\d{1,3}) -p (tcp|udp) -m (tcp|udp) --dport (\\d{1,5}) -m comment --comment "?${EXP_PREFIX}(\\d{1,12})"? -j ACCEPT$`,
  );
  let inputSeen = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === `-N ${chain}`) view.chainExists = true;
    else if (line.startsWith('-A INPUT ') || line === '-A INPUT') {
      const isJump = line === `-A INPUT -j ${chain}`;
      if (isJump) view.jumps++;
      if (!inputSeen) view.jumpFirst = isJump;
      inputSeen = true;
    } else if (line.startsWith(`-A ${chain} `)) {
      view.chainExists = true;
      const g = parseGrant(grantRe.exec(line), family);
      if (g) view.grants.push(g);
      else view.fixed.push(line);
    }
  }
  return view;
}

function parseGrant(m: RegExpExecArray | null, family: Family): IptGrant | null {
  if (!m) return null;
  const [, addr, prefix, proto, match, portText, expText] = m;
  if (proto !== match || Number(prefix) !== IPT_TOOLS[family].max) return null;
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  try {
    const s = normalizeSource(addr);
    if (s.family !== family) return null;
    return { family, source: s.source, proto: proto as Proto, port, exp: Number(expText) };
  } catch {
    return null;
  }
}

function restoreScript(lines: readonly string[]): string {
  return ['*filter', ...lines, 'COMMIT', ''].join('\n');
}

/** Rebuilds our chain for one family in one transaction; fixes the jump when needed. */
export function iptInitScript(o: NormalOptions, family: Family, view: IptView, now: number): string {
  const chain = iptChainName(o.name);
  const lines = [`:${chain} - [0:0]`, `-F ${chain}`];
  if (o.stealthPort !== null) lines.push(`-A ${chain} ${stealthSpec(o.stealthPort)}`);
  lines.push(`-A ${chain} ${ESTABLISHED_RULE}`);
  // Unexpired grants stay, but only for ports still protected: elsewhere their ACCEPT would
  // override the admin's own INPUT rules.
  for (const g of view.grants) {
    const protectedPort = o.protect.some((p) => p.proto === g.proto && p.port === g.port);
    if (g.exp * 1000 > now && protectedPort) lines.push(`-A ${chain} ${grantSpec(g)}`);
  }
  for (const c of o.alwaysAllow) {
    if (c.family !== family) continue;
    for (const p of o.protect) {
      lines.push(
        `-A ${chain} -s ${c.address}/${c.prefix} -p ${p.proto} -m ${p.proto} --dport ${p.port} -j ACCEPT`,
      );
    }
  }
  for (const p of o.protect) {
    lines.push(
      `-A ${chain} -p ${p.proto} -m ${p.proto} --dport ${p.port} -m comment --comment ${PROTECT_COMMENT} -j DROP`,
    );
  }
  if (!(view.jumps === 1 && view.jumpFirst)) {
    // All in the same transaction: there is never a moment without the jump.
    for (let i = 0; i < view.jumps; i++) lines.push(`-D INPUT -j ${chain}`);
    lines.push(`-I INPUT 1 -j ${chain}`);
  }
  return restoreScript(lines);
}

/**
 * Deletes the old rules for these keys and inserts the new ones at `position` (grantPosition),
 * above the drops.
 */
export function iptGrantScript(
  chain: string,
  remove: readonly IptGrant[],
  add: readonly IptGrant[],
  position = 2,
): string {
  return restoreScript([
    ...remove.map((g) => `-D ${chain} ${grantSpec(g)}`),
    ...add.map((g) => `-I ${chain} ${position} ${grantSpec(g)}`),
  ]);
}

export function iptDeleteGrantsScript(chain: string, remove: readonly IptGrant[]): string {
  return restoreScript(remove.map((g) => `-D ${chain} ${grantSpec(g)}`));
}

export function iptRemoveScript(chain: string, view: IptView): string {
  const lines: string[] = [];
  for (let i = 0; i < view.jumps; i++) lines.push(`-D INPUT -j ${chain}`);
  lines.push(`-F ${chain}`, `-X ${chain}`);
  return restoreScript(lines);
}

/**
 * For IPv4 then IPv6: the grants `pick` selects from `list`, deleted by one `remove` per family
 * that has any. Returns how many went. The input chain and the forwarding chains sweep alike.
 */
export async function removeEachFamily<G>(
  list: (family: Family) => Promise<readonly G[]>,
  pick: (g: G) => boolean,
  remove: (family: Family, gone: G[]) => Promise<void>,
): Promise<number> {
  let n = 0;
  for (const family of [4, 6] as const) {
    const gone = (await list(family)).filter(pick);
    if (gone.length === 0) continue;
    await remove(family, gone);
    n += gone.length;
  }
  return n;
}

/** healthy(): `check` holds for IPv4 and IPv6; a listing that fails counts as unhealthy. */
export async function bothFamilies(check: (family: Family) => Promise<boolean>): Promise<boolean> {
  try {
    for (const family of [4, 6] as const) if (!(await check(family))) return false;
    return true;
  } catch {
    return false;
  }
}

export class IptablesFirewall implements Firewall {
  readonly backend = 'iptables' as const;
  #o: NormalOptions;
  readonly #chain: string;
  readonly #runner: FirewallExec;
  readonly #serial = new Serial();
  #fixed: Record<Family, string | null> = { 4: null, 6: null };

  constructor(o: NormalOptions, runner: FirewallExec) {
    this.#o = o;
    this.#chain = iptChainName(o.name);
    this.#runner = runner;
  }

  /** Whole filter table or our chain only; a missing chain lists as empty. */
  async #list(family: Family, whole: boolean): Promise<IptView> {
    const args = whole ? [...WAIT, '-S'] : [...WAIT, '-S', this.#chain];
    const r = await this.#runner.run(IPT_TOOLS[family].list, args);
    if (r.code !== 0) {
      // Our chain may simply not exist (listed as empty); anything else must not pass for an
      // empty chain, or flush() would report success with grants still in place. The whole
      // table listing tells the two apart and throws when iptables itself is failing.
      if (!whole) return this.#list(family, true);
      throw new FirewallError(
        `${IPT_TOOLS[family].list} ${args.join(' ')}: exit ${r.code}: ${firstLine(r.stderr)}`,
      );
    }
    return parseIptList(r.stdout, this.#chain, family);
  }

  async #restore(family: Family, script: string): Promise<void> {
    const args = [...WAIT, '--noflush'];
    const r = await this.#runner.run(IPT_TOOLS[family].restore, args, script);
    if (r.code !== 0) {
      throw new FirewallError(`${IPT_TOOLS[family].restore}: exit ${r.code}: ${firstLine(r.stderr)}`);
    }
  }

  init(): Promise<void> {
    return this.#serial.run(async () => {
      for (const family of [4, 6] as const) {
        const before = await this.#list(family, true);
        await this.#restore(family, iptInitScript(this.#o, family, before, this.#o.now()));
        const after = await this.#list(family, true);
        const protects = after.fixed.filter((l) => l.endsWith(`--comment ${PROTECT_COMMENT} -j DROP`));
        const stealth = this.#o.stealthPort;
        if (
          !after.chainExists ||
          (stealth !== null && after.fixed[0] !== `-A ${this.#chain} ${stealthSpec(stealth)}`) ||
          after.jumps !== 1 ||
          !after.jumpFirst ||
          protects.length !== this.#o.protect.length
        ) {
          throw new FirewallError(
            `${IPT_TOOLS[family].list}: chain ${this.#chain} is not as installed right after init`,
          );
        }
        this.#fixed[family] = after.fixed.join('\n');
      }
    });
  }

  async grant(req: GrantRequest): Promise<void> {
    const g = normalizeGrant(req, this.#o.protect);
    await this.#serial.run(async () => {
      const exp = Math.ceil((this.#o.now() + g.timeoutSeconds * 1000) / 1000);
      const view = await this.#list(g.family, false);
      const old = view.grants.filter(
        (o) => o.source === g.source && g.ports.some((p) => p.proto === o.proto && p.port === o.port),
      );
      const add = g.ports.map((p) => ({
        family: g.family,
        source: g.source,
        proto: p.proto,
        port: p.port,
        exp,
      }));
      await this.#restore(g.family, iptGrantScript(this.#chain, old, add, grantPosition(this.#o)));
    });
  }

  list(): Promise<ActiveGrant[]> {
    return this.#serial.run(async () => {
      const out: ActiveGrant[] = [];
      for (const family of [4, 6] as const) {
        const view = await this.#list(family, false);
        for (const g of view.grants)
          out.push({ source: g.source, proto: g.proto, port: g.port, expiresAt: g.exp * 1000 });
      }
      return out;
    });
  }

  #removeWhere(pick: (g: IptGrant) => boolean): Promise<number> {
    return this.#serial.run(() =>
      removeEachFamily(
        async (family) => (await this.#list(family, false)).grants,
        pick,
        (family, gone) => this.#restore(family, iptDeleteGrantsScript(this.#chain, gone)),
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
        const fixed = this.#fixed[family];
        if (fixed === null) return false;
        const view = await this.#list(family, true);
        return view.chainExists && view.jumps === 1 && view.jumpFirst && view.fixed.join('\n') === fixed;
      }),
    );
  }

  async shutdown(opts: { removeProtections: boolean }): Promise<void> {
    if (!opts.removeProtections) {
      // Nobody would sweep these after we exit: close them now, keep the drops (fail closed).
      await this.flush();
      return;
    }
    await this.#serial.run(async () => {
      for (const family of [4, 6] as const) {
        const view = await this.#list(family, true);
        if (view.chainExists) await this.#restore(family, iptRemoveScript(this.#chain, view));
        this.#fixed[family] = null;
      }
    });
  }
}
