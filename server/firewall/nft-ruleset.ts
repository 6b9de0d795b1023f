/**
 * The nftables backend's ruleset, as text (nftables.ts runs it): its table, `inet <name>`
 * (default `inet spa`), the scripts init, grant, flush and delete send to `nft -f -`, and the
 * parser of `nft -j list table` that list() and healthy() trust. Pure: no commands run here.
 *
 *   table inet spa {
 *     set allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }   # grants
 *     set allow6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
 *     set returning4 { type ipv4_addr; flags timeout; }        # pcap mode only: the returning
 *     set returning6 { type ipv6_addr; flags timeout; }        # lane (see below)
 *     set returning_rate4 { type ipv4_addr; size 4096; flags dynamic,timeout; timeout 60s; }
 *     set returning_rate6 { type ipv6_addr; size 4096; flags dynamic,timeout; timeout 60s; }
 *     counter dropped
 *     chain input {
 *       type filter hook input priority filter - 10; policy accept;
 *       udp dport 62201 ip saddr @returning4 add @returning_rate4 { ip saddr limit rate 10/second burst 10 packets } accept
 *       udp dport 62201 ip6 saddr @returning6 add @returning_rate6 { ip6 saddr limit rate 10/second burst 10 packets } accept
 *       udp dport 62201 drop                            # the SPA port, pcap mode only
 *       ct state established,related accept            # live sessions outlast their window
 *       meta l4proto != { tcp, udp } accept
 *       meta l4proto . th dport != { tcp . 22 } accept  # --protect: not ours to decide
 *       ip saddr . meta l4proto . th dport @allow4 accept
 *       ip6 saddr . meta l4proto . th dport @allow6 accept
 *       ip saddr { 192.0.2.0/24 } accept               # always_allow (only when given)
 *       ip6 saddr { 2001:db8:ff::/48 } accept
 *       counter name "dropped" drop
 *     }
 *   }
 *
 * In pcap mode (`stealthPort`) the first rule drops the SPA port for everyone, IPv4 and IPv6,
 * before anything can accept it: nothing listens there, so without it the kernel would answer
 * every probe with ICMP port unreachable. libpcap reads frames before the input hook, so knocks
 * are still seen. It carries no counter: a counting rule would change the listing healthy()
 * compares.
 *
 * The returning lane (pcap mode only): a source granted access in the last TRUSTED_SOURCE_MS
 * (server/limits.ts, 15 minutes) is in `returning4`/`returning6`, put there by the same
 * transaction as its grant, with that timeout (nftables.ts refreshes it at most once a minute
 * per source). Its datagrams to the SPA port, at most
 * RETURNING_RATE_PER_SECOND a second per source, are accepted and reach the monitor's socket on
 * that port (reply-socket.ts) as well as libpcap: a flood from other addresses can fill the
 * capture ring but not that socket's queue. Everyone else still gets the drop.
 *
 * The protected ports and always_allow blocks are anonymous sets inside the rules, so the chain
 * alone says everything about the protection: `nft -t list table` (sets' contents omitted)
 * costs the same with 10 grants or 10 000, and healthy() can run every second.
 */
import type { Family } from '../../protocol/address.js';
import { isObj, type Json, nftItems } from './output.js';
import { RETURNING_RATE_PER_SECOND, TRUSTED_SOURCE_MS } from '../limits.js';
import type { ActiveGrant, Proto } from './types.js';
import { type NormalCidr, type NormalGrant, type NormalOptions, normalizeSource } from './validate.js';

export const NFT_PRIORITY = -10;
const CHAIN = 'input';
export const PROBE_SET = 'probe';
/** TEST-NET-1; the scratch set is matched by no rule. */
const PROBE_ADDR = '192.0.2.1';

export function allowSet(f: Family): string {
  return f === 4 ? 'allow4' : 'allow6';
}

/** The returning lane's sets (pcap mode only). */
export function returningSet(f: Family): string {
  return f === 4 ? 'returning4' : 'returning6';
}

const RETURNING_SECONDS = Math.floor(TRUSTED_SOURCE_MS / 1000);
const RETURNING_SETS_MAX = 4096;

function returningRules(port: number): string[] {
  const rate = `limit rate ${RETURNING_RATE_PER_SECOND}/second burst ${RETURNING_RATE_PER_SECOND} packets`;
  return [
    `udp dport ${port} ip saddr @returning4 add @returning_rate4 { ip saddr ${rate} } accept`,
    `udp dport ${port} ip6 saddr @returning6 add @returning_rate6 { ip6 saddr ${rate} } accept`,
  ];
}

function returningSetLines(t: string): string[] {
  const rate = `size ${RETURNING_SETS_MAX}; flags dynamic,timeout; timeout 60s;`;
  return [
    `add set ${t} returning4 { type ipv4_addr; flags timeout; }`,
    `add set ${t} returning6 { type ipv6_addr; flags timeout; }`,
    `add set ${t} returning_rate4 { type ipv4_addr; ${rate} }`,
    `add set ${t} returning_rate6 { type ipv6_addr; ${rate} }`,
  ];
}

/**
 * Lines putting `source` in the returning lane for `seconds` (default the whole window), with
 * a fresh timeout when it is there already (the same two forms as nftGrantScript).
 */
function returningLines(
  name: string,
  family: Family,
  source: string,
  refresh: NftRefresh,
  seconds = RETURNING_SECONDS,
): string[] {
  const set = `inet ${name} ${returningSet(family)}`;
  const timed = `add element ${set} { ${source} timeout ${seconds}s }`;
  if (refresh === 'add') return [timed];
  return [timed, `delete element ${set} { ${source} }`, timed];
}

/**
 * Puts sources that were granted access before a restart back in the returning lane, each for
 * what is left of its window (at most the whole window); empty outside pcap mode.
 */
export function nftReturningScript(
  o: NormalOptions,
  sources: readonly { family: Family; source: string; seconds: number }[],
): string {
  if (o.stealthPort === null) return '';
  const lines: string[] = [];
  for (const s of sources) {
    const seconds = Math.min(RETURNING_SECONDS, Math.floor(s.seconds));
    if (seconds >= 1) lines.push(...returningLines(o.name, s.family, s.source, 'readd', seconds));
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

function cidrText(c: NormalCidr): string {
  return c.prefix === (c.family === 4 ? 32 : 128) ? c.address : `${c.address}/${c.prefix}`;
}

/** Our chain's rules, in order. */
export function nftRules(o: NormalOptions): string[] {
  const rules = [
    ...(o.stealthPort === null ? [] : [...returningRules(o.stealthPort), `udp dport ${o.stealthPort} drop`]),
    'ct state established,related accept',
    'meta l4proto != { tcp, udp } accept',
    `meta l4proto . th dport != { ${o.protect.map((p) => `${p.proto} . ${p.port}`).join(', ')} } accept`,
    'ip saddr . meta l4proto . th dport @allow4 accept',
    'ip6 saddr . meta l4proto . th dport @allow6 accept',
  ];
  for (const [f, match] of [
    [4, 'ip saddr'],
    [6, 'ip6 saddr'],
  ] as const) {
    const cidrs = o.alwaysAllow.filter((c) => c.family === f);
    if (cidrs.length > 0) rules.push(`${match} { ${cidrs.map(cidrText).join(', ')} } accept`);
  }
  rules.push('counter name "dropped" drop');
  return rules;
}

/** The whole init transaction (no grants), ending with the first half of the refresh probe. */
export function nftInitScript(o: NormalOptions): string {
  const t = `inet ${o.name}`;
  const lines = [
    `add table ${t}`,
    `add set ${t} allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }`,
    `add set ${t} allow6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }`,
    ...(o.stealthPort === null ? [] : returningSetLines(t)),
    `add counter ${t} dropped`,
    `add chain ${t} ${CHAIN} { type filter hook input priority ${NFT_PRIORITY}; policy accept; }`,
    `flush chain ${t} ${CHAIN}`,
    ...nftRules(o).map((r) => `add rule ${t} ${CHAIN} ${r}`),
    `add set ${t} ${PROBE_SET} { type ipv4_addr; flags timeout; }`,
    `flush set ${t} ${PROBE_SET}`,
    `add element ${t} ${PROBE_SET} { ${PROBE_ADDR} timeout 3600s }`,
  ];
  return `${lines.join('\n')}\n`;
}

/** Second half of the refresh probe: does re-adding the element move its expiry? */
export function nftProbeScript(name: string): string {
  return `add element inet ${name} ${PROBE_SET} { ${PROBE_ADDR} timeout 7200s }\n`;
}

/** How a re-grant refreshes an element's timeout. */
export type NftRefresh = 'add' | 'readd';

/**
 * 'add': one add; the kernel (>= 6.10) sets the new timeout on an element that exists.
 * 'readd': add, delete, add. The first add makes sure the element exists, so the delete cannot
 * fail, and the last add sets the new timeout; works on every kernel, atomically (no packet sees
 * the element missing).
 */
export function nftGrantScript(
  name: string,
  g: NormalGrant,
  refresh: NftRefresh = 'readd',
  returning = false,
): string {
  const set = `inet ${name} ${allowSet(g.family)}`;
  const keys = g.ports.map((p) => `${g.source} . ${p.proto} . ${p.port}`);
  const timed = keys.map((k) => `${k} timeout ${g.timeoutSeconds}s`).join(', ');
  const lines =
    refresh === 'add'
      ? [`add element ${set} { ${timed} }`]
      : [
          `add element ${set} { ${timed} }`,
          `delete element ${set} { ${keys.join(', ')} }`,
          `add element ${set} { ${timed} }`,
        ];
  if (returning) lines.push(...returningLines(name, g.family, g.source, refresh));
  return `${lines.join('\n')}\n`;
}

/**
 * Empties the allow sets. The returning lane stays: it opens nothing, it only lets a source that
 * got in lately be heard under a flood, as the verifier's fair queue keeps it too.
 */
export function nftFlushScript(name: string): string {
  return `flush set inet ${name} allow4\nflush set inet ${name} allow6\n`;
}

/** Deletes our table; the `add` first makes it succeed when the table is already gone. */
export function nftDeleteScript(name: string): string {
  return `add table inet ${name}\ndelete table inet ${name}\n`;
}

export interface NftTableView {
  grants: ActiveGrant[];
  /** Elements of the allow sets without a timeout (never ours), as `source . proto . port`. */
  untimed: { family: Family; key: string }[];
  /** Seconds left on the probe element, -1 when there is none. */
  probeExpires: number;
  /** Rules in our chain, -1 when the chain is missing. */
  chainRules: number;
  /** Everything but handles, counter values and set elements, in listing order. */
  fingerprint: string;
}

function protoOf(x: unknown): Proto | null {
  if (x === 'tcp' || x === 6) return 'tcp';
  if (x === 'udp' || x === 17) return 'udp';
  return null;
}

function portOf(x: unknown): number | null {
  const n =
    typeof x === 'number' ? x : typeof x === 'string' && /^[0-9]{1,5}$/.test(x) ? Number(x) : Number.NaN;
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : null;
}

/** Parses `nft -j list table inet <name>`; throws FW_ERROR when it is not that JSON. */
export function parseNftTable(json: string, name: string, now: number): NftTableView {
  const items = nftItems(json);
  const view: NftTableView = { grants: [], untimed: [], probeExpires: -1, chainRules: -1, fingerprint: '' };
  const parts: string[] = [];
  for (const item of items) {
    if (!isObj(item)) continue;
    const kind = Object.keys(item)[0];
    const body = kind === undefined ? undefined : item[kind];
    if (kind === undefined || kind === 'metainfo' || !isObj(body)) continue;
    if (body.table !== undefined && body.table !== name) continue;
    if (kind === 'set' && body.name === PROBE_SET) {
      view.probeExpires = probeExpires(body.elem);
      continue;
    }
    const copy: Json = { ...body };
    delete copy.handle;
    if (kind === 'counter') {
      delete copy.packets;
      delete copy.bytes;
    }
    if (kind === 'chain' && body.name === CHAIN) view.chainRules = Math.max(view.chainRules, 0);
    if (kind === 'rule' && body.chain === CHAIN) view.chainRules = Math.max(view.chainRules, 0) + 1;
    // Set contents are not structure (and `nft -t` leaves them out): the protection lives in
    // the rules. Our allow sets' elements are the grants.
    if (kind === 'set') delete copy.elem;
    if (kind === 'set' && (body.name === 'allow4' || body.name === 'allow6')) {
      const family: Family = body.name === 'allow4' ? 4 : 6;
      for (const e of Array.isArray(body.elem) ? body.elem : []) readElement(e, family, now, view);
    }
    parts.push(JSON.stringify([kind, copy]));
  }
  view.fingerprint = parts.join('\n');
  return view;
}

function probeExpires(elem: unknown): number {
  const first: unknown = Array.isArray(elem) ? elem[0] : undefined;
  const e = isObj(first) && isObj(first.elem) ? first.elem : null;
  return e && typeof e.expires === 'number' ? e.expires : -1;
}

function readElement(e: unknown, family: Family, now: number, view: NftTableView): void {
  const wrapped = isObj(e) && isObj(e.elem) ? e.elem : null;
  const val = wrapped ? wrapped.val : e;
  const concat = isObj(val) && Array.isArray(val.concat) ? (val.concat as unknown[]) : null;
  if (concat?.length !== 3) return;
  const proto = protoOf(concat[1]);
  const port = portOf(concat[2]);
  let source: string;
  try {
    const s = normalizeSource(concat[0]);
    if (s.family !== family) return;
    source = s.source;
  } catch {
    return;
  }
  if (!proto || !port) return;
  const expires = wrapped ? wrapped.expires : undefined;
  const timeout = wrapped ? wrapped.timeout : undefined;
  let expiresAt: number;
  if (typeof expires === 'number') expiresAt = now + expires * 1000;
  else if (typeof timeout === 'number') expiresAt = now + timeout * 1000;
  else {
    view.untimed.push({ family, key: `${source} . ${proto} . ${port}` });
    expiresAt = Number.POSITIVE_INFINITY;
  }
  view.grants.push({ source, proto, port, expiresAt });
}
