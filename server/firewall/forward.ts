/**
 * Gateway mode (SPEC.md §4.6, §9.6): forwarding grants. A grant lets one source address reach an
 * internal host's port (or a port on the gateway itself) through an external port of the
 * gateway, for a while: a DNAT (or REDIRECT) for that source and external port only, the forward
 * path to that host:port only for DNATed connections, and the return path. Live connections
 * outlast the grant (conntrack keeps their NAT binding; established traffic is let through).
 *
 * nftables: a table of its own, `inet <name>_gw`, apart from the input table so that neither's
 * health check sees the other's changes. Every grant is a set of map/set elements with a timeout,
 * so the kernel closes the path on time even if spad is dead.
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
 *
 * iptables: chains `<NAME>_GW_PRE` (nat, jumped to from PREROUTING rule 1) and `<NAME>_GW_FWD`
 * (filter, FORWARD rule 1), in iptables and ip6tables, rules carrying `spa_exp_<unix s>`:
 *
 *   -A SPA_GW_PRE -s 198.51.100.2/32 -p tcp -m tcp --dport 25000 -m comment --comment spa_exp_N -j DNAT --to-destination 203.0.113.10:22
 *   -A SPA_GW_FWD -m conntrack --ctstate RELATED,ESTABLISHED -m conntrack --ctstate DNAT -j ACCEPT
 *   -A SPA_GW_FWD -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
 *   -A SPA_GW_FWD -s 198.51.100.2/32 -d 203.0.113.10/32 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment spa_exp_N -j ACCEPT
 *   -A SPA_GW_FWD -d 203.0.113.0/24 -m comment --comment spa_gw_protect -j DROP
 *
 * The kernel knows nothing of the expiry there: sweep() must run on a timer (the daemon's, as
 * for input grants), init() drops expired rules a crash left behind, and shutdown() removes the
 * grants since nobody would sweep them. IPv4 and IPv6 are both supported (IPv6 with the same DNAT,
 * i.e. NAT66 of the port only); a grant never mixes families.
 */
import { type Address, formatAddress, parseCidr, tryParseAddress, unmapV4 } from '../../protocol/address.js';
import type { Family } from '../../protocol/address.js';
import { ConfigError } from '../../protocol/errors.js';
import { Serial } from './serial.js';
import { type FirewallExec, FirewallError, type FirewallKind, type Proto } from './types.js';
import { DEFAULT_NAME, NAME_RE, normalizeSource } from './validate.js';

export interface ForwardOptions {
  /** As the input firewall's name: table `inet <name>_gw`, chains `<NAME>_GW_PRE/_GW_FWD`. */
  name?: string;
  /** CIDRs behind the gateway: forwarded traffic to them is dropped unless granted. 1..256. */
  internal: readonly string[];
  now?: () => number;
}

export interface ForwardGrantRequest {
  /** The client's address (IPv4 or IPv6 text). */
  source: string;
  proto: Proto;
  /** Port on the gateway the client connects to. */
  externalPort: number;
  /** Internal host (same family as source), or 'local' for a port on the gateway itself. */
  host: string;
  port: number;
  timeoutSeconds: number;
}

export interface ActiveForward {
  source: string;
  proto: Proto;
  externalPort: number;
  /** Canonical address text, or 'local'. */
  host: string;
  port: number;
  /** Unix ms (nftables: to about one second). */
  expiresAt: number;
}

export interface Forwarder {
  readonly backend: FirewallKind;
  /** Idempotent: installs table/chains and the internal drop, keeps unexpired grants. */
  init(): Promise<void>;
  /** One atomic change; a grant for the same (source, proto, external port) replaces the old one. */
  grant(req: ForwardGrantRequest): Promise<void>;
  list(): Promise<ActiveForward[]>;
  /** iptables: removes grants expired at `now`; nftables: 0 (the kernel expires them). */
  sweep(now: number): Promise<number>;
  flush(): Promise<void>;
  healthy(): Promise<boolean>;
  /** removeProtections: delete everything ours. Otherwise the drop stays; iptables grants go. */
  shutdown(opts: { removeProtections: boolean }): Promise<void>;
}

interface NormalForwardOptions {
  name: string;
  internal: { family: Family; text: string }[];
  now: () => number;
}

interface NormalForward {
  family: Family;
  source: string;
  proto: Proto;
  externalPort: number;
  /** canonical text or 'local' */
  host: string;
  port: number;
  timeoutSeconds: number;
}

const INTERNAL_MAX = 256;

function cfgError(field: string, msg: string): never {
  throw new ConfigError('CONFIG_INVALID', `${field}: ${msg}`, { field });
}

function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

export function normalizeForwardOptions(o: ForwardOptions): NormalForwardOptions {
  const name = o.name ?? DEFAULT_NAME;
  if (!NAME_RE.test(name)) cfgError('name', `must match ${NAME_RE.source}`);
  if (!Array.isArray(o.internal) || o.internal.length < 1 || o.internal.length > INTERNAL_MAX) {
    cfgError('gateway.internal', `1..${INTERNAL_MAX} CIDR blocks`);
  }
  const internal = o.internal.map((t) => {
    const c = parseCidr(String(t), 'gateway.internal');
    if (c.prefix < 1) cfgError('gateway.internal', 'a /0 would drop all forwarding');
    const a = formatAddress({ family: c.family, bytes: c.bytes });
    return { family: c.family, text: `${a}/${c.prefix}` };
  });
  return { name, internal, now: o.now ?? Date.now };
}

export function normalizeForward(req: ForwardGrantRequest): NormalForward {
  const { family, source } = normalizeSource(req.source);
  if (req.proto !== 'tcp' && req.proto !== 'udp') {
    throw new ConfigError('ACCESS_SPEC', 'forward: proto must be tcp or udp', { field: 'proto' });
  }
  if (!isPort(req.externalPort) || !isPort(req.port)) {
    throw new ConfigError('ACCESS_SPEC', 'forward: ports must be 1..65535', { field: 'port' });
  }
  if (!Number.isInteger(req.timeoutSeconds) || req.timeoutSeconds < 1 || req.timeoutSeconds > 86_400) {
    throw new ConfigError('ACCESS_SPEC', 'forward: timeout must be 1..86400 s', { field: 'timeout' });
  }
  let host = 'local';
  if (req.host !== 'local') {
    const parsed: Address | null = typeof req.host === 'string' ? tryParseAddress(req.host) : null;
    if (!parsed)
      throw new ConfigError('ADDRESS_INVALID', 'forward: host is not an address', { field: 'host' });
    const a = unmapV4(parsed);
    if (a.family !== family) {
      throw new ConfigError('ADDRESS_INVALID', 'forward: host and source differ in family', {
        field: 'host',
      });
    }
    if (a.bytes.every((b) => b === 0)) {
      throw new ConfigError('ADDRESS_INVALID', 'forward: unspecified host', { field: 'host' });
    }
    host = formatAddress(a);
  }
  return {
    family,
    source,
    proto: req.proto,
    externalPort: req.externalPort,
    host,
    port: req.port,
    timeoutSeconds: req.timeoutSeconds,
  };
}

function firstLine(s: string): string {
  return (s.split('\n').find((l) => l.trim() !== '') ?? '').trim().slice(0, 200);
}

// ---------------------------------------------------------------- nftables

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

type Json = Record<string, unknown>;
const isObj = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Parses `nft -j list table inet <name>_gw` into grants and a structure fingerprint. */
export function parseNftForward(
  json: string,
  table: string,
  now: number,
): { grants: ActiveForward[]; fingerprint: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (cause) {
    throw new FirewallError('nft: listing is not JSON', { cause });
  }
  const items = isObj(doc) && Array.isArray(doc.nftables) ? (doc.nftables as unknown[]) : null;
  if (!items) throw new FirewallError('nft: listing has no nftables array');
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

// ---------------------------------------------------------------- iptables

export const GW_PROTECT_COMMENT = 'spa_gw_protect';
const EXP = 'spa_exp_';
const IPT: Record<Family, { list: string; restore: string; max: number }> = {
  4: { list: 'iptables', restore: 'iptables-restore', max: 32 },
  6: { list: 'ip6tables', restore: 'ip6tables-restore', max: 128 },
};
const WAIT = ['-w', '5'];

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
  const m = IPT[g.family].max;
  const head = `-s ${g.source}/${m} -p ${g.proto} -m ${g.proto} --dport ${g.externalPort} -m comment --comment ${EXP}${g.exp}`;
  return g.host === 'local'
    ? `${head} -j REDIRECT --to-ports ${g.port}`
    : `${head} -j DNAT --to-destination ${hostPort(g.family, g.host, g.port)}`;
}

export function iptFwdSpec(g: IptForward): string {
  const m = IPT[g.family].max;
  return `-s ${g.source}/${m} -d ${g.host}/${m} -p ${g.proto} -m ${g.proto} --dport ${g.port} -m conntrack --ctstate DNAT -m comment --comment ${EXP}${g.exp} -j ACCEPT`;
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
    `^-A ${chain} -s (\\S+)/(\\d+) -p (tcp|udp) -m (?:tcp|udp) --dport (\\d+) -m comment --comment "?${EXP}(\\d+)"? -j (?:DNAT --to-destination (?:\\[([0-9a-f:.]+)\\]|([0-9.]+)):(\\d+)|REDIRECT --to-ports (\\d+))$`,
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
      await this.#run(IPT[family].list, [...WAIT, '-t', 'nat', '-S']),
      this.#chains.pre,
      family,
    );
  }

  /** Our forward chain's fixed lines and the FORWARD jumps. */
  async #filter(
    family: Family,
  ): Promise<{ fixed: string[]; jumps: number; jumpFirst: boolean; lines: string[] }> {
    const out = await this.#run(IPT[family].list, [...WAIT, '-t', 'filter', '-S']);
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
        if (!line.includes(`--comment ${EXP}`) && !line.includes(`--comment "${EXP}`)) fixed.push(line);
      }
    }
    return { fixed, jumps, jumpFirst, lines };
  }

  async #restore(family: Family, script: string): Promise<void> {
    await this.#run(IPT[family].restore, [...WAIT, '--noflush'], script);
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
    return this.#serial.run(async () => {
      let n = 0;
      const { pre, fwd } = this.#chains;
      for (const family of [4, 6] as const) {
        const gone = (await this.#nat(family)).grants.filter(pick);
        if (gone.length === 0) continue;
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
        n += gone.length;
      }
      return n;
    });
  }

  async flush(): Promise<void> {
    await this.#removeWhere(() => true);
  }

  sweep(now: number): Promise<number> {
    return this.#removeWhere((g) => g.exp * 1000 <= now);
  }

  healthy(): Promise<boolean> {
    return this.#serial.run(async () => {
      try {
        for (const family of [4, 6] as const) {
          const nat = await this.#nat(family);
          const filter = await this.#filter(family);
          if (!nat.exists || nat.jumps !== 1 || !nat.jumpFirst) return false;
          if (filter.jumps !== 1 || !filter.jumpFirst || filter.fixed.join('\n') !== this.#fixed[family])
            return false;
        }
        return true;
      } catch {
        return false;
      }
    });
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

/** Nothing runs until init(). Throws CONFIG_INVALID / ADDRESS_INVALID for bad options. */
export function createForwarder(kind: FirewallKind, opts: ForwardOptions, runner: FirewallExec): Forwarder {
  const o = normalizeForwardOptions(opts);
  if (kind === 'nftables') return new NftForwarder(o, runner);
  return new IptForwarder(o, runner);
}
