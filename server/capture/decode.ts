/**
 * Pure decoders: one captured link-layer frame -> the UDP datagram inside it, or a typed reason.
 *
 * Untrusted bytes, so: every length field is checked against what was captured before it is
 * used, nothing here throws on any input (property-tested on random bytes), and no allocation
 * beyond the two address strings (the payload is a view; the caller copies it).
 *
 * Scope, on purpose narrow:
 * - links: Ethernet (one 802.1Q/802.1ad tag), Linux cooked v1 (SLL) and v2 (SLL2), raw IP
 *   (LINKTYPE_RAW, LINKTYPE_IPV4/IPV6), BSD loopback (NULL);
 * - IPv4 with options; fragments are dropped (the first one too: no reassembly, so a knock must
 *   fit one packet);
 * - IPv6 with hop-by-hop, routing and destination-options headers (at most MAX_EXT_HEADERS);
 *   a fragment header is dropped unless it is an atomic fragment (offset 0, no more fragments,
 *   RFC 6946), which the kernel delivers too. An IPv4-mapped IPv6 source is dropped, as Linux does:
 *   it would otherwise name an IPv4 sender it did not come from;
 * - UDP: the UDP length must be >= 8 and fit the IP payload; IP-level trailing bytes (Ethernet
 *   padding) are ignored. Checksums are not verified (a bad one fails the crypto later anyway).
 *
 * Frames the capture buffer cut short (`truncated`) decode as long as the headers fit: `payload`
 * is then shorter than `length`, which lets the caller report an oversize datagram without
 * keeping its bytes. An untruncated frame whose lengths disagree is malformed.
 */
import { formatAddress } from '../../protocol/address.js';

/** Canonical text (protocol/address.ts, RFC 5952) of the address at `b[off..]`. */
function addressText(b: Uint8Array, off: number, family: 4 | 6): string {
  return formatAddress({ family, bytes: b.subarray(off, off + (family === 4 ? 4 : 16)) });
}

/** True when the 16 bytes at `off` are an IPv4-mapped IPv6 address (::ffff:0:0/96). */
function isV4Mapped(b: Uint8Array, off: number): boolean {
  for (let i = 0; i < 10; i++) if (b[off + i] !== 0) return false;
  return b[off + 10] === 0xff && b[off + 11] === 0xff;
}

/**
 * Link types as pcap_datalink() returns them on Linux (DLT_ values, equal to the tcpdump.org
 * LINKTYPE_ values except raw IP: DLT_RAW is 12 live, LINKTYPE_RAW 101 in files).
 */
export const LINKTYPE = {
  NULL: 0,
  ETHERNET: 1,
  DLT_RAW: 12,
  RAW: 101,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

const SUPPORTED: ReadonlySet<number> = new Set(Object.values(LINKTYPE));

export function isSupportedLinkType(linkType: number): boolean {
  return SUPPORTED.has(linkType);
}

export const DECODE_FAILURES = [
  'link-unsupported',
  'link-truncated',
  'not-ip',
  'not-for-host',
  'outgoing',
  'ip-header',
  'ip-truncated',
  'fragment',
  'not-udp',
  'bad-source',
  'udp-header',
  'udp-truncated',
] as const;
export type DecodeFailure = (typeof DECODE_FAILURES)[number];

export interface DecodedUdp {
  readonly family: 4 | 6;
  readonly source: string;
  readonly destination: string;
  readonly sourcePort: number;
  readonly destinationPort: number;
  /** View into the frame. Shorter than `length` only when the frame was captured truncated. */
  readonly payload: Uint8Array;
  /** UDP payload length according to the UDP header. */
  readonly length: number;
}

export type DecodeResult =
  { readonly ok: true; readonly udp: DecodedUdp } | { readonly ok: false; readonly reason: DecodeFailure };

export interface DecodeOptions {
  /** The capture cut the frame (it was longer than the capture buffer). */
  truncated?: boolean;
  /**
   * Our own MAC on an Ethernet device. When given, unicast frames to another MAC (seen because
   * the device is promiscuous) are dropped as `not-for-host`, like the kernel would.
   */
  localMac?: Uint8Array;
}

export const MAX_EXT_HEADERS = 8;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;
const IPPROTO_UDP = 17;
const IPV6_HOPOPTS = 0;
const IPV6_ROUTING = 43;
const IPV6_FRAGMENT = 44;
const IPV6_DSTOPTS = 60;
/** Linux sll_pkttype values */
const PACKET_OTHERHOST = 3;
const PACKET_OUTGOING = 4;

const fail = (reason: DecodeFailure): DecodeResult => ({ ok: false, reason });

/** Callers check bounds first; `?? 0` only satisfies the type checker. */
function u16(b: Uint8Array, i: number): number {
  return ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
}

export function decodeFrame(linkType: number, frame: Uint8Array, opts: DecodeOptions = {}): DecodeResult {
  const truncated = opts.truncated === true;
  switch (linkType) {
    case LINKTYPE.ETHERNET:
      return decodeEthernet(frame, truncated, opts.localMac);
    case LINKTYPE.LINUX_SLL:
      return decodeSll(frame, truncated);
    case LINKTYPE.LINUX_SLL2:
      return decodeSll2(frame, truncated);
    case LINKTYPE.RAW:
    case LINKTYPE.DLT_RAW:
      return decodeIp(frame, 0, truncated, undefined);
    case LINKTYPE.IPV4:
      return decodeIp(frame, 0, truncated, 4);
    case LINKTYPE.IPV6:
      return decodeIp(frame, 0, truncated, 6);
    case LINKTYPE.NULL:
      return decodeNull(frame, truncated);
    default:
      return fail('link-unsupported');
  }
}

function decodeEthernet(b: Uint8Array, truncated: boolean, localMac: Uint8Array | undefined): DecodeResult {
  if (b.length < 14) return fail('link-truncated');
  if (localMac && localMac.length === 6 && ((b[0] ?? 0) & 1) === 0) {
    for (let i = 0; i < 6; i++) if (b[i] !== localMac[i]) return fail('not-for-host');
  }
  let type = u16(b, 12);
  let offset = 14;
  if (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) {
    if (b.length < 18) return fail('link-truncated');
    type = u16(b, 16);
    offset = 18;
  }
  return decodeByEthertype(b, offset, type, truncated);
}

function decodeByEthertype(b: Uint8Array, offset: number, type: number, truncated: boolean): DecodeResult {
  if (type === ETHERTYPE_IPV4) return decodeIp(b, offset, truncated, 4);
  if (type === ETHERTYPE_IPV6) return decodeIp(b, offset, truncated, 6);
  return fail('not-ip');
}

function pktTypeFailure(pktType: number): DecodeResult | null {
  if (pktType === PACKET_OUTGOING) return fail('outgoing');
  if (pktType === PACKET_OTHERHOST) return fail('not-for-host');
  return null;
}

/** SLL: pkttype(2) arphrd(2) addrlen(2) addr(8) protocol(2) */
function decodeSll(b: Uint8Array, truncated: boolean): DecodeResult {
  if (b.length < 16) return fail('link-truncated');
  const bad = pktTypeFailure(u16(b, 0));
  if (bad) return bad;
  return decodeByEthertype(b, 16, u16(b, 14), truncated);
}

/** SLL2: protocol(2) reserved(2) ifindex(4) arphrd(2) pkttype(1) addrlen(1) addr(8) */
function decodeSll2(b: Uint8Array, truncated: boolean): DecodeResult {
  if (b.length < 20) return fail('link-truncated');
  const bad = pktTypeFailure(b[10] ?? 0);
  if (bad) return bad;
  return decodeByEthertype(b, 20, u16(b, 0), truncated);
}

/** BSD loopback: a 4-byte address family in the capturing host's byte order. */
function decodeNull(b: Uint8Array, truncated: boolean): DecodeResult {
  if (b.length < 4) return fail('link-truncated');
  const le = (b[0] ?? 0) | ((b[1] ?? 0) << 8) | ((b[2] ?? 0) << 16) | ((b[3] ?? 0) << 24);
  const be = ((b[0] ?? 0) << 24) | ((b[1] ?? 0) << 16) | ((b[2] ?? 0) << 8) | (b[3] ?? 0);
  const isFamily = (values: readonly number[]): boolean => values.includes(le) || values.includes(be);
  if (isFamily([2])) return decodeIp(b, 4, truncated, 4);
  if (isFamily([10, 24, 28, 30])) return decodeIp(b, 4, truncated, 6);
  return fail('not-ip');
}

/** `expected` undefined: take the version nibble (raw IP links). */
function decodeIp(
  b: Uint8Array,
  offset: number,
  truncated: boolean,
  expected: 4 | 6 | undefined,
): DecodeResult {
  if (b.length <= offset) return fail('ip-truncated');
  const version = (b[offset] ?? 0) >> 4;
  if (expected !== undefined && version !== expected) return fail('ip-header');
  if (version === 4) return decodeIPv4(b, offset, truncated);
  if (version === 6) return decodeIPv6(b, offset, truncated);
  return fail('not-ip');
}

function decodeIPv4(b: Uint8Array, off: number, truncated: boolean): DecodeResult {
  if (b.length < off + 20) return fail('ip-truncated');
  const ihl = ((b[off] ?? 0) & 0x0f) * 4;
  if (ihl < 20) return fail('ip-header');
  if (b.length < off + ihl) return fail('ip-truncated');
  const total = u16(b, off + 2);
  if (total < ihl) return fail('ip-header');
  // Frames longer than the IP packet carry link padding; shorter ones are only fine when cut by us.
  if (b.length < off + total && !truncated) return fail('ip-truncated');
  const flagsFrag = u16(b, off + 6);
  const moreFragments = (flagsFrag & 0x2000) !== 0;
  const fragOffset = flagsFrag & 0x1fff;
  if (moreFragments || fragOffset !== 0) return fail('fragment');
  if (b[off + 9] !== IPPROTO_UDP) return fail('not-udp');
  return decodeUdp(
    b,
    off + ihl,
    off + total,
    truncated,
    4,
    addressText(b, off + 12, 4),
    addressText(b, off + 16, 4),
  );
}

function decodeIPv6(b: Uint8Array, off: number, truncated: boolean): DecodeResult {
  if (b.length < off + 40) return fail('ip-truncated');
  const payloadLength = u16(b, off + 4);
  // 0 means a jumbogram (hop-by-hop jumbo option): never a knock.
  if (payloadLength === 0) return fail('ip-header');
  const end = off + 40 + payloadLength;
  if (b.length < end && !truncated) return fail('ip-truncated');
  if (isV4Mapped(b, off + 8)) return fail('bad-source');
  let next = b[off + 6] ?? 0;
  let p = off + 40;
  for (let count = 0; ; count++) {
    if (next === IPPROTO_UDP) break;
    if (count >= MAX_EXT_HEADERS) return fail('not-udp');
    if (next === IPV6_HOPOPTS && count !== 0) return fail('ip-header');
    if (next === IPV6_HOPOPTS || next === IPV6_ROUTING || next === IPV6_DSTOPTS) {
      if (p + 8 > end) return fail('ip-header');
      if (p + 8 > b.length) return fail('ip-truncated');
      const len = ((b[p + 1] ?? 0) + 1) * 8;
      next = b[p] ?? 0;
      p += len;
      if (p > end) return fail('ip-header');
      continue;
    }
    if (next === IPV6_FRAGMENT) {
      if (p + 8 > end) return fail('ip-header');
      if (p + 8 > b.length) return fail('ip-truncated');
      const fo = u16(b, p + 2);
      if ((fo & 0xfff8) !== 0 || (fo & 1) !== 0) return fail('fragment');
      next = b[p] ?? 0;
      p += 8;
      continue;
    }
    return fail('not-udp');
  }
  return decodeUdp(b, p, end, truncated, 6, addressText(b, off + 8, 6), addressText(b, off + 24, 6));
}

/** `end`: where the IP packet ends according to the IP header (may exceed b.length if truncated). */
function decodeUdp(
  b: Uint8Array,
  off: number,
  end: number,
  truncated: boolean,
  family: 4 | 6,
  source: string,
  destination: string,
): DecodeResult {
  if (off + 8 > end) return fail('udp-header');
  if (off + 8 > b.length) return fail('udp-truncated');
  const udpLength = u16(b, off + 4);
  if (udpLength < 8 || off + udpLength > end) return fail('udp-header');
  const payloadEnd = off + udpLength;
  if (payloadEnd > b.length && !truncated) return fail('udp-truncated');
  return {
    ok: true,
    udp: {
      family,
      source,
      destination,
      sourcePort: u16(b, off),
      destinationPort: u16(b, off + 2),
      payload: b.subarray(off + 8, Math.min(payloadEnd, b.length)),
      length: udpLength - 8,
    },
  };
}

/** Maps the link-type string `cap` 0.2.1 returns from open() to a LINKTYPE_ number, or null. */
export function linkTypeFromCap(name: string): number | null {
  switch (name) {
    case 'ETHERNET':
      return LINKTYPE.ETHERNET;
    case 'LINKTYPE_LINUX_SLL':
      return LINKTYPE.LINUX_SLL;
    case 'RAW':
      return LINKTYPE.DLT_RAW;
    case 'NULL':
      return LINKTYPE.NULL;
    default: {
      // cap names only five types and reports the rest as "Unknown linktype N".
      const m = /^Unknown linktype (\d{1,5})$/.exec(name);
      return m ? Number(m[1]) : null;
    }
  }
}
