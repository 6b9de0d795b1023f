/**
 * Framing between the pcap child process (pcap-child.ts) and spad (pcap.ts), over the child's
 * stdout pipe. Each record: type (u8), body length (u32 BE), body.
 * - READY: linkType (u32 BE)
 * - FRAME: truncated (u8), dropped so far in the child (u32 BE), receivedAt (u64 BE, the
 *   child's process.hrtime.bigint(): CLOCK_MONOTONIC, the same clock as the parent's), frame
 * - ERROR: UTF-8 message
 * The reader refuses a body longer than its bound: a confused child is killed, not believed.
 */

export const RECORD = { READY: 1, FRAME: 2, ERROR: 3, FILTERED: 4 } as const;
const HEADER = 5;
const FRAME_PREFIX = 13;

export type ChildRecord =
  | { type: 'ready'; linkType: number }
  | { type: 'frame'; truncated: boolean; dropped: number; receivedAt: bigint; frame: Buffer }
  | { type: 'error'; message: string }
  | { type: 'filtered'; counts: Record<string, number> };

function record(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER + body.length);
  out.writeUInt8(type, 0);
  out.writeUInt32BE(body.length, 1);
  body.copy(out, HEADER);
  return out;
}

export function encodeReady(linkType: number): Buffer {
  const body = Buffer.alloc(4);
  body.writeUInt32BE(linkType, 0);
  return record(RECORD.READY, body);
}

/** Cumulative counts, by reason, of junk the capture process did not forward (prefilter.ts). */
export function encodeFiltered(counts: Record<string, number>): Buffer {
  return record(RECORD.FILTERED, Buffer.from(JSON.stringify(counts), 'utf8'));
}

export function encodeError(message: string): Buffer {
  return record(RECORD.ERROR, Buffer.from(message.slice(0, 1000), 'utf8'));
}

/** One allocation: header, prefix and a copy of the frame. */
export function encodeFrame(
  frame: Uint8Array,
  truncated: boolean,
  dropped: number,
  receivedAt: bigint,
): Buffer {
  const out = Buffer.allocUnsafe(HEADER + FRAME_PREFIX + frame.length);
  out.writeUInt8(RECORD.FRAME, 0);
  out.writeUInt32BE(FRAME_PREFIX + frame.length, 1);
  out.writeUInt8(truncated ? 1 : 0, HEADER);
  out.writeUInt32BE(dropped >>> 0, HEADER + 1);
  out.writeBigUInt64BE(receivedAt, HEADER + 5);
  out.set(frame, HEADER + FRAME_PREFIX);
  return out;
}

export class RecordReader {
  private pending: Buffer = Buffer.alloc(0);
  constructor(private readonly maxBody: number) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
  }

  /** The next complete record, null when more bytes are needed. Throws on a malformed stream. */
  next(): ChildRecord | null {
    const p = this.pending;
    if (p.length < HEADER) return null;
    const type = p.readUInt8(0);
    const len = p.readUInt32BE(1);
    if (len > this.maxBody) throw new Error(`capture child sent a record of ${len} bytes`);
    if (p.length < HEADER + len) return null;
    const body = p.subarray(HEADER, HEADER + len);
    this.pending = p.subarray(HEADER + len);
    switch (type) {
      case RECORD.READY:
        if (len !== 4) throw new Error('capture child sent a malformed READY record');
        return { type: 'ready', linkType: body.readUInt32BE(0) };
      case RECORD.FRAME:
        if (len < FRAME_PREFIX) throw new Error('capture child sent a malformed FRAME record');
        return {
          type: 'frame',
          truncated: body.readUInt8(0) === 1,
          dropped: body.readUInt32BE(1),
          receivedAt: body.readBigUInt64BE(5),
          frame: body.subarray(FRAME_PREFIX),
        };
      case RECORD.ERROR:
        return { type: 'error', message: body.toString('utf8') };
      case RECORD.FILTERED: {
        const counts = JSON.parse(body.toString('utf8')) as unknown;
        if (
          typeof counts !== 'object' ||
          counts === null ||
          Object.values(counts).some((n) => typeof n !== 'number')
        ) {
          throw new Error('capture child sent a malformed FILTERED record');
        }
        return { type: 'filtered', counts: counts as Record<string, number> };
      }
      default:
        throw new Error(`capture child sent an unknown record type ${type}`);
    }
  }
}
