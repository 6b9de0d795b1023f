/**
 * Hand-built frames for the capture decoder tests: every header written field by field, so a
 * test can break exactly one of them.
 */

export interface UdpSpec {
  sport?: number;
  dport?: number;
  payload?: Uint8Array;
  /** Overrides the UDP length field. */
  length?: number;
}

export function udp(spec: UdpSpec = {}): Uint8Array {
  const payload = spec.payload ?? new Uint8Array([1, 2, 3]);
  const b = new Uint8Array(8 + payload.length);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, spec.sport ?? 40000);
  dv.setUint16(2, spec.dport ?? 62201);
  dv.setUint16(4, spec.length ?? 8 + payload.length);
  dv.setUint16(6, 0);
  b.set(payload, 8);
  return b;
}

export interface V4Spec {
  src?: number[];
  dst?: number[];
  protocol?: number;
  /** IP options bytes (multiple of 4). */
  options?: Uint8Array;
  /** Overrides the IHL nibble. */
  ihl?: number;
  /** Overrides total length. */
  totalLength?: number;
  flagsFrag?: number;
  version?: number;
}

export function ipv4(body: Uint8Array, spec: V4Spec = {}): Uint8Array {
  const options = spec.options ?? new Uint8Array(0);
  const hl = 20 + options.length;
  const b = new Uint8Array(hl + body.length);
  const dv = new DataView(b.buffer);
  b[0] = ((spec.version ?? 4) << 4) | (spec.ihl ?? hl / 4);
  dv.setUint16(2, spec.totalLength ?? b.length);
  dv.setUint16(4, 0x1234);
  dv.setUint16(6, spec.flagsFrag ?? 0x4000); // DF
  b[8] = 64;
  b[9] = spec.protocol ?? 17;
  b.set(spec.src ?? [198, 51, 100, 2], 12);
  b.set(spec.dst ?? [198, 51, 100, 1], 16);
  b.set(options, 20);
  b.set(body, hl);
  return b;
}

export interface V6Spec {
  src?: Uint8Array;
  dst?: Uint8Array;
  next?: number;
  /** Overrides the payload length field. */
  payloadLength?: number;
}

export function v6addr(groups: number[]): Uint8Array {
  const b = new Uint8Array(16);
  for (const [i, g] of groups.entries()) {
    b[2 * i] = g >> 8;
    b[2 * i + 1] = g & 0xff;
  }
  return b;
}

export const CLIENT6 = v6addr([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]);
export const SERVER6 = v6addr([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);

export function ipv6(body: Uint8Array, spec: V6Spec = {}): Uint8Array {
  const b = new Uint8Array(40 + body.length);
  const dv = new DataView(b.buffer);
  b[0] = 0x60;
  dv.setUint16(4, spec.payloadLength ?? body.length);
  b[6] = spec.next ?? 17;
  b[7] = 64;
  b.set(spec.src ?? CLIENT6, 8);
  b.set(spec.dst ?? SERVER6, 24);
  b.set(body, 40);
  return b;
}

/** An IPv6 extension header (hop-by-hop, routing, destination options): next, len, padding. */
export function ext(next: number, body: Uint8Array, units = 0): Uint8Array {
  const b = new Uint8Array((units + 1) * 8 + body.length);
  b[0] = next;
  b[1] = units;
  b.set(body, (units + 1) * 8);
  return b;
}

/** An IPv6 fragment header: next, offset in 8-byte units, more-fragments flag. */
export function fragHeader(next: number, body: Uint8Array, offset: number, more: boolean): Uint8Array {
  const b = new Uint8Array(8 + body.length);
  b[0] = next;
  new DataView(b.buffer).setUint16(2, (offset << 3) | (more ? 1 : 0));
  new DataView(b.buffer).setUint32(4, 0xabcdef);
  b.set(body, 8);
  return b;
}

export const ETH_IPV4 = 0x0800;
export const ETH_IPV6 = 0x86dd;

export function ethernet(type: number, body: Uint8Array, vlanTags: number[] = []): Uint8Array {
  const b = new Uint8Array(14 + 4 * vlanTags.length + body.length);
  const dv = new DataView(b.buffer);
  b.set([0x02, 0, 0, 0, 0, 1], 0);
  b.set([0x02, 0, 0, 0, 0, 2], 6);
  let off = 12;
  for (const tpid of vlanTags) {
    dv.setUint16(off, tpid);
    dv.setUint16(off + 2, 42);
    off += 4;
  }
  dv.setUint16(off, type);
  b.set(body, off + 2);
  return b;
}

export function sll(type: number, body: Uint8Array, pktType = 0): Uint8Array {
  const b = new Uint8Array(16 + body.length);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, pktType);
  dv.setUint16(2, 1); // ARPHRD_ETHER
  dv.setUint16(4, 6);
  b.set([0x02, 0, 0, 0, 0, 2], 6);
  dv.setUint16(14, type);
  b.set(body, 16);
  return b;
}

export function sll2(type: number, body: Uint8Array, pktType = 0): Uint8Array {
  const b = new Uint8Array(20 + body.length);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, type);
  dv.setUint32(4, 2); // ifindex
  dv.setUint16(8, 1);
  b[10] = pktType;
  b[11] = 6;
  b.set([0x02, 0, 0, 0, 0, 2], 12);
  b.set(body, 20);
  return b;
}

export function nullLink(family: number, body: Uint8Array, littleEndian = true): Uint8Array {
  const b = new Uint8Array(4 + body.length);
  new DataView(b.buffer).setUint32(0, family, littleEndian);
  b.set(body, 4);
  return b;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
