/**
 * Byte-level mutations of knocks, shared by the property tests (test/security/*-property.test.ts,
 * where fast-check picks the operations) and the long mutation run (scripts/fuzz-open.ts, where a
 * seeded PRNG does). A mutation is a list of plain operations so a finding can be printed and
 * replayed exactly.
 */

export type Op =
  | { readonly kind: 'xor'; readonly at: number; readonly mask: number }
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: readonly number[] }
  | { readonly kind: 'delete'; readonly at: number; readonly length: number }
  | { readonly kind: 'duplicate'; readonly at: number; readonly length: number }
  | { readonly kind: 'swap'; readonly at: number; readonly other: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'splice'; readonly at: number; readonly from: number; readonly length: number };

export const OP_KINDS = [
  'xor',
  'set',
  'insert',
  'delete',
  'duplicate',
  'swap',
  'truncate',
  'splice',
] as const;

/** Bytes that often sit on a boundary of a parser: lengths, tags, signs. */
export const INTERESTING = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x7f, 0x80, 0xbf, 0xc0, 0xdf, 0xe0, 0xfe, 0xff,
];

/**
 * Applies `ops` in order. Positions are taken modulo the current length, so any op list applies
 * to any input; `donor` is the source of `splice` (another knock, for example).
 */
export function applyOps(input: Uint8Array, ops: readonly Op[], donor: Uint8Array = input): Uint8Array {
  let b = Uint8Array.from(input);
  const pos = (at: number, len = b.length) => (len === 0 ? 0 : ((at % len) + len) % len);
  for (const op of ops) {
    switch (op.kind) {
      case 'xor': {
        if (b.length === 0) break;
        const i = pos(op.at);
        b[i] = ((b[i] ?? 0) ^ (op.mask & 0xff || 1)) & 0xff;
        break;
      }
      case 'set':
        if (b.length > 0) b[pos(op.at)] = op.value & 0xff;
        break;
      case 'insert': {
        const i = pos(op.at, b.length + 1);
        b = Uint8Array.from([...b.subarray(0, i), ...op.bytes.map((x) => x & 0xff), ...b.subarray(i)]);
        break;
      }
      case 'delete': {
        if (b.length === 0) break;
        const i = pos(op.at);
        b = Uint8Array.from([...b.subarray(0, i), ...b.subarray(i + Math.max(1, op.length))]);
        break;
      }
      case 'duplicate': {
        if (b.length === 0) break;
        const i = pos(op.at);
        const part = b.subarray(i, i + Math.max(1, op.length));
        b = Uint8Array.from([...b.subarray(0, i), ...part, ...b.subarray(i)]);
        break;
      }
      case 'swap': {
        if (b.length === 0) break;
        const i = pos(op.at);
        const j = pos(op.other);
        const t = b[i] ?? 0;
        b[i] = b[j] ?? 0;
        b[j] = t;
        break;
      }
      case 'truncate':
        b = b.slice(0, pos(op.at, b.length + 1));
        break;
      case 'splice': {
        if (donor.length === 0 || b.length === 0) break;
        const from = pos(op.from, donor.length);
        const part = donor.subarray(from, from + Math.max(1, op.length));
        const i = pos(op.at);
        b = Uint8Array.from([...b.subarray(0, i), ...part, ...b.subarray(i + part.length)]);
        break;
      }
    }
  }
  return b;
}

/** A small seeded PRNG (xorshift32): reproducible runs from a printed seed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** One to `max` random operations, biased towards single-byte changes near the headers. */
export function randomOps(next: () => number, length: number, max = 4): Op[] {
  const n = 1 + (next() % max);
  const ops: Op[] = [];
  const at = () =>
    next() % 4 === 0 ? next() % Math.min(24, Math.max(1, length)) : next() % Math.max(1, length);
  for (let i = 0; i < n; i++) {
    const kind = OP_KINDS[next() % OP_KINDS.length] ?? 'xor';
    switch (kind) {
      case 'xor':
        ops.push({ kind, at: at(), mask: 1 << (next() % 8) });
        break;
      case 'set':
        ops.push({ kind, at: at(), value: INTERESTING[next() % INTERESTING.length] ?? next() & 0xff });
        break;
      case 'insert':
        ops.push({ kind, at: at(), bytes: Array.from({ length: 1 + (next() % 8) }, () => next() & 0xff) });
        break;
      case 'delete':
      case 'duplicate':
        ops.push({ kind, at: at(), length: 1 + (next() % 16) });
        break;
      case 'swap':
        ops.push({ kind, at: at(), other: at() });
        break;
      case 'truncate':
        ops.push({ kind, at: at() });
        break;
      case 'splice':
        ops.push({ kind, at: at(), from: next(), length: 1 + (next() % 32) });
        break;
    }
  }
  return ops;
}
