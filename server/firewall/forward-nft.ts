/**
 * Forwarding grants with nftables (forward.ts): a table of its own, `inet <name>_gw`, apart from
 * the input table so that neither's health check sees the other's changes. Every grant is a set
 * of map/set elements with a timeout, so the kernel closes the path on time even if spad is dead.
 *
 *   table inet spa_gw {
 *     map dnat4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags timeout; }
 *     map local4 { type ipv4_addr . inet_proto . inet_service : inet_service; flags timeout; }
 *     set fwd4 { type ipv4_addr . inet_proto . ipv4_addr . inet_service; flags timeout; }
 *     (and dnat6, local6, fwd6)
 *     chain gw_pre { type nat hook prerouting priority dstnat - 10; policy accept;
 *       meta l4proto { tcp, udp } dnat ip to ip saddr . meta l4proto . th dport map @dnat4
 *       meta l4proto { tcp, udp } redirect to : ip saddr . meta l4proto . th dport map @local4  (…6) }
 *     chain gw_forward { type filter hook forward priority filter - 10; policy accept;
 *       ct state established,related accept
 *       ct status dnat ip saddr . meta l4proto . ip daddr . th dport @fwd4 accept           (…6)
 *       ip daddr { 203.0.113.0/24 } drop          # `internal`: nobody reaches it unless granted
 *     }
 *   }
 *
 * The forward accept requires `ct status dnat`: a granted source routing straight to the internal
 * host, without going through the external port, is dropped like anyone else. As with the input
 * table, an accept here only ends our chain: the admin's own forward chain must let forwarding to
 * the internal networks through (spad's chain is the gate).
 */
import type { Family } from '../../protocol/address.js';
import {
  type ActiveForward,
  type Forwarder,
  type ForwardGrantRequest,
  isPort,
  type NormalForward,
  type NormalForwardOptions,
  normalizeForward,
} from './forward.js';
import { firstLine, isObj, type Json, nftItems } from './output.js';
import { Serial } from './serial.js';
import { type FirewallExec, FirewallError } from './types.js';

export function nftGwTable(name: string): string {
  return `${name}_gw`;
}

const v = (f: Family) =>
  f === 4 ? { ip: 'ip', addr: 'ipv4_addr', n: '4' } : { ip: 'ip6', addr: 'ipv6_addr', n: '6' };

export function nftForwardRules(o: NormalForwardOptions): { pre: string[]; forward: string[] } {
  const pre: string[] = [];
  const forward = ['ct state established,related accept'];
  for (const f of [4, 6] as const) {
    const { ip, n } = v(f);
    pre.push(`meta l4proto { tcp, udp } dnat ${ip} to ${ip} saddr . meta l4proto . th dport map @dnat${n}`);
    pre.push(
      `meta l4proto { tcp, udp } meta nfproto ipv${n} redirect to : ${ip} saddr . meta l4proto . th dport map @local${n}`,
    );
    forward.push(`ct status dnat ${ip} saddr . meta l4proto . ${ip} daddr . th dport @fwd${n} accept`);
  }
  for (const f of [4, 6] as const) {
    const cidrs = o.internal.filter((c) => c.family === f).map((c) => c.text);
    if (cidrs.length > 0) forward.push(`${v(f).ip} daddr { ${cidrs.join(', ')} } drop`);
  }
  return { pre, forward };
}

export function nftForwardInitScript(o: NormalForwardOptions): string {
  const t = `inet ${nftGwTable(o.name)}`;
  const lines = [`add table ${t}`];
  for (const f of [4, 6] as const) {
    const { addr, n } = v(f);
    lines.push(
      `add map ${t} dnat${n} { type ${addr} . inet_proto . inet_service : ${addr} . inet_service; flags timeout; }`,
      `add map ${t} local${n} { type ${addr} . inet_proto . inet_service : inet_service; flags timeout; }`,
      `add set ${t} fwd${n} { type ${addr} . inet_proto . ${addr} . inet_service; flags timeout; }`,
    );
  }
  const r = nftForwardRules(o);
  lines.push(
    `add chain ${t} gw_pre { type nat hook prerouting priority dstnat - 10; policy accept; }`,
    `flush chain ${t} gw_pre`,
    ...r.pre.map((x) => `add rule ${t} gw_pre ${x}`),
    `add chain ${t} gw_forward { type filter hook forward priority filter - 10; policy accept; }`,
    `flush chain ${t} gw_forward`,
    ...r.forward.map((x) => `add rule ${t} gw_forward ${x}`),
  );
  return `${lines.join('\n')}\n`;
}

/**
 * Deletes what `existing` (the current listing) holds for this grant's key (a redirect or a DNAT
 * with its forward element), then adds the new elements, in one transaction: no packet sees the
 * key half changed. A map refuses `add` for a key it holds with another value, hence the listing.
 */
export function nftForwardGrantScript(
  name: string,
  g: NormalForward,
  existing: readonly ActiveForward[] = [],
  now = 0,
): string {
  const t = `inet ${nftGwTable(name)}`;
  const { n } = v(g.family);
  const key = `${g.source} . ${g.proto} . ${g.externalPort}`;
  const timeout = `timeout ${g.timeoutSeconds}s`;
  const lines: string[] = [];
  for (const old of existing) {
    if (old.source !== g.source || old.proto !== g.proto || old.externalPort !== g.externalPort) continue;
    if (old.host === 'local') lines.push(`delete element ${t} local${n} { ${key} }`);
    else {
      lines.push(`delete element ${t} dnat${n} { ${key} }`);
      const fwdKey = `${g.source} . ${g.proto} . ${old.host} . ${old.port}`;
      const shared = existing.some(
        (o) =>
          o !== old &&
          o.host === old.host &&
          o.port === old.port &&
          o.source === old.source &&
          o.proto === old.proto,
      );
      if (!shared && !(old.host === g.host && old.port === g.port))
        lines.push(`delete element ${t} fwd${n} { ${fwdKey} }`);
    }
  }
  if (g.host === 'local') lines.push(`add element ${t} local${n} { ${key} ${timeout} : ${g.port} }`);
  else {
    lines.push(`add element ${t} dnat${n} { ${key} ${timeout} : ${g.host} . ${g.port} }`);
    // The forward element may be shared by two external ports leading to one target: it must
    // last as long as the longest of them.
    const fwdKey = `${g.source} . ${g.proto} . ${g.host} . ${g.port}`;
    const others = existing.filter(
      (o) =>
        o.source === g.source &&
        o.proto === g.proto &&
        o.host === g.host &&
        o.port === g.port &&
        o.externalPort !== g.externalPort,
    );
    const left = Math.max(g.timeoutSeconds, ...others.map((o) => Math.ceil((o.expiresAt - now) / 1000)));
    const el = `add element ${t} fwd${n} { ${fwdKey} timeout ${Number.isFinite(left) ? left : g.timeoutSeconds}s }`;
    lines.push(el, `delete element ${t} fwd${n} { ${fwdKey} }`, el);
  }
  return `${lines.join('\n')}\n`;
}

/** Parses `nft -j list table inet <name>_gw` into grants and a structure fingerprint. */
export function parseNftForward(
  json: string,
  table: string,
  now: number,
): { grants: ActiveForward[]; fingerprint: string } {
  const items = nftItems(json);
  const grants: ActiveForward[] = [];
  const parts: string[] = [];
  for (const item of items) {
    if (!isObj(item)) continue;
    const kind = Object.keys(item)[0];
    const body = kind === undefined ? undefined : item[kind];
    if (kind === undefined || kind === 'metainfo' || !isObj(body) || body.table !== table) continue;
    const copy: Json = { ...body };
    delete copy.handle;
    delete copy.elem;
    parts.push(JSON.stringify([kind, copy]));
    if (kind !== 'map' || typeof body.name !== 'string' || !Array.isArray(body.elem)) continue;
    const local = body.name.startsWith('local');
    if (!local && !body.name.startsWith('dnat')) continue;
    for (const e of body.elem) {
      if (!Array.isArray(e) || e.length !== 2) continue;
      const [k, val] = e as [unknown, unknown];
      const wrapped = isObj(k) && isObj(k.elem) ? k.elem : null;
      const concat =
        wrapped && isObj(wrapped.val) && Array.isArray(wrapped.val.concat)
          ? (wrapped.val.concat as unknown[])
          : null;
      if (concat?.length !== 3) continue;
      const [src, proto, ext] = concat;
      let host = 'local';
      let port: unknown = val;
      if (!local) {
        const tc = isObj(val) && Array.isArray(val.concat) ? (val.concat as unknown[]) : null;
        if (tc?.length !== 2) continue;
        host = String(tc[0]);
        port = tc[1];
      }
      const expires =
        wrapped && typeof wrapped.expires === 'number' ? wrapped.expires : Number.POSITIVE_INFINITY;
      if ((proto !== 'tcp' && proto !== 'udp') || !isPort(ext) || !isPort(port)) continue;
      grants.push({
        source: String(src),
        proto,
        externalPort: ext,
        host,
        port,
        expiresAt: now + expires * 1000,
      });
    }
  }
  return { grants, fingerprint: parts.join('\n') };
}

export class NftForwarder implements Forwarder {
  readonly backend = 'nftables' as const;
  readonly #o: NormalForwardOptions;
  readonly #runner: FirewallExec;
  readonly #serial = new Serial();
  #fingerprint: string | null = null;

  constructor(o: NormalForwardOptions, runner: FirewallExec) {
    this.#o = o;
    this.#runner = runner;
  }

  get #table(): string {
    return nftGwTable(this.#o.name);
  }

  async #script(s: string): Promise<void> {
    const r = await this.#runner.run('nft', ['-f', '-'], s);
    if (r.code !== 0) throw new FirewallError(`nft -f -: exit ${r.code}: ${firstLine(r.stderr)}`);
  }

  async #view(): Promise<ReturnType<typeof parseNftForward> | null> {
    const args = ['-j', 'list', 'table', 'inet', this.#table];
    const r = await this.#runner.run('nft', args);
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr)) return null;
      throw new FirewallError(`nft ${args.join(' ')}: exit ${r.code}: ${firstLine(r.stderr)}`);
    }
    return parseNftForward(r.stdout, this.#table, this.#o.now());
  }

  init(): Promise<void> {
    return this.#serial.run(async () => {
      await this.#script(nftForwardInitScript(this.#o));
      const view = await this.#view();
      if (!view) throw new FirewallError(`nft: table inet ${this.#table} missing right after init`);
      this.#fingerprint = view.fingerprint;
    });
  }

  async grant(req: ForwardGrantRequest): Promise<void> {
    const g = normalizeForward(req);
    await this.#serial.run(async () => {
      const existing = (await this.#view())?.grants ?? [];
      await this.#script(nftForwardGrantScript(this.#o.name, g, existing, this.#o.now()));
    });
  }

  list(): Promise<ActiveForward[]> {
    return this.#serial.run(async () => (await this.#view())?.grants ?? []);
  }

  sweep(_now: number): Promise<number> {
    return Promise.resolve(0);
  }

  flush(): Promise<void> {
    return this.#serial.run(async () => {
      const t = `inet ${this.#table}`;
      const sets = ['dnat4', 'dnat6', 'local4', 'local6', 'fwd4', 'fwd6'];
      await this.#script(
        `${sets.map((s) => `flush ${s.startsWith('fwd') ? 'set' : 'map'} ${t} ${s}`).join('\n')}\n`,
      );
    });
  }

  healthy(): Promise<boolean> {
    return this.#serial.run(async () => {
      if (this.#fingerprint === null) return false;
      try {
        return (await this.#view())?.fingerprint === this.#fingerprint;
      } catch {
        return false;
      }
    });
  }

  shutdown(opts: { removeProtections: boolean }): Promise<void> {
    return this.#serial.run(async () => {
      if (!opts.removeProtections) return;
      await this.#script(`add table inet ${this.#table}\ndelete table inet ${this.#table}\n`);
      this.#fingerprint = null;
    });
  }
}
