/**
 * IPv4/IPv6 addresses and CIDR blocks as bytes, written here rather than taken from node:net so
 * that protocol/ stays free of the network stack and the exact accepted text forms are ours to
 * specify (SPEC.md §4.4): dotted-quad IPv4 without leading zeros; RFC 4291 IPv6 text including
 * `::` compression and a trailing dotted IPv4; no zone ids. Output text is canonical (RFC 5952).
 */
import { ConfigError } from './errors.js';

export type Family = 4 | 6;

export interface Address {
  readonly family: Family;
  readonly bytes: Uint8Array; // 4 or 16 bytes
}

export interface Cidr {
  readonly family: Family;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

function parseV4(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (const [i, p] of parts.entries()) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseV6(text: string): Uint8Array | null {
  if (text.length > 45 || text.length < 2) return null;
  let head = text;
  let tail = '';
  const dbl = text.indexOf('::');
  if (dbl !== -1) {
    if (text.indexOf('::', dbl + 1) !== -1) return null;
    head = text.slice(0, dbl);
    tail = text.slice(dbl + 2);
  }
  const groups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (const [i, p] of parts.entries()) {
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseV4(p);
        if (!v4) return null;
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
      out.push(Number.parseInt(p, 16));
    }
    return out;
  };
  const h = groups(head);
  const t = groups(tail);
  if (!h || !t) return null;
  // a dotted IPv4 may only close the address
  if (dbl !== -1 && head.includes('.')) return null;
  const fill = 8 - h.length - t.length;
  if (dbl === -1 ? fill !== 0 : fill < 1) return null;
  const all = [...h, ...new Array<number>(fill).fill(0), ...t];
  const out = new Uint8Array(16);
  for (const [i, g] of all.entries()) {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  return out;
}

/** Parses an IPv4 or IPv6 address; null when it is not one. */
export function tryParseAddress(text: string): Address | null {
  const v4 = parseV4(text);
  if (v4) return { family: 4, bytes: v4 };
  if (text.includes(':')) {
    const v6 = parseV6(text);
    if (v6) return { family: 6, bytes: v6 };
  }
  return null;
}

export function parseAddress(text: string, field = 'address'): Address {
  const a = tryParseAddress(text);
  if (!a) throw new ConfigError('ADDRESS_INVALID', `${field}: not an IPv4 or IPv6 address`, { field });
  return a;
}

/** IPv4-mapped IPv6 (::ffff:a.b.c.d) folded to IPv4, as a dual-stack socket reports IPv4 peers. */
export function unmapV4(a: Address): Address {
  if (
    a.family === 6 &&
    a.bytes.slice(0, 10).every((b) => b === 0) &&
    a.bytes[10] === 0xff &&
    a.bytes[11] === 0xff
  ) {
    return { family: 4, bytes: a.bytes.slice(12) };
  }
  return a;
}

/**
 * Canonical text of an address a socket reports (`rinfo.address`): zone dropped, IPv4-mapped
 * folded to IPv4, RFC 5952. libuv writes some forms differently (`::1.2.3.4`), hence the round
 * trip. Null for text that is not an address.
 */
export function canonicalSocketAddress(text: string): string | null {
  const zone = text.indexOf('%');
  const a = tryParseAddress(zone >= 0 ? text.slice(0, zone) : text);
  return a ? formatAddress(unmapV4(a)) : null;
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed). */
export function formatAddress(a: Address): string {
  if (a.family === 4) {
    const b = a.bytes;
    // the capture path formats every frame's source: no array, no join
    return b.length === 4 ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}` : Array.from(b).join('.');
  }
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(((a.bytes[2 * i] ?? 0) << 8) | (a.bytes[2 * i + 1] ?? 0));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestAt === -1) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

/** Canonical text of an address given as text; throws ADDRESS_INVALID. */
export function canonicalAddress(text: string, field = 'address'): string {
  return formatAddress(unmapV4(parseAddress(text, field)));
}

/** `a.b.c.d/n`, `x::/n`, or a bare address (= /32 or /128). Host bits must be zero. */
export function parseCidr(text: string, field = 'cidr'): Cidr {
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const a = tryParseAddress(addrText);
  if (!a)
    throw new ConfigError('ADDRESS_INVALID', `${field}: not an IPv4/IPv6 address or CIDR block`, { field });
  const max = a.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) {
      throw new ConfigError('ADDRESS_INVALID', `${field}: prefix length must be 0..${max}`, { field });
    }
    prefix = Number(p);
  }
  for (let bit = prefix; bit < max; bit++) {
    if (((a.bytes[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) {
      throw new ConfigError('ADDRESS_INVALID', `${field}: host bits set after /${prefix}`, { field });
    }
  }
  return { family: a.family, bytes: a.bytes, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress({ family: c.family, bytes: c.bytes })}/${c.prefix}`;
}

export function cidrContains(c: Cidr, a: Address): boolean {
  const addr = unmapV4(a);
  if (c.family !== addr.family) return false;
  const full = c.prefix >> 3;
  for (let i = 0; i < full; i++) if (c.bytes[i] !== addr.bytes[i]) return false;
  const rest = c.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((c.bytes[full] ?? 0) & mask) === ((addr.bytes[full] ?? 0) & mask);
}

export function addressEquals(a: Address, b: Address): boolean {
  const x = unmapV4(a);
  const y = unmapV4(b);
  return x.family === y.family && x.bytes.every((v, i) => v === y.bytes[i]);
}
