/**
 * The capture process's pipe I/O, done from inside the packet callback.
 *
 * `cap` runs pcap_dispatch() one packet at a time in a loop until the kernel ring is empty,
 * from one libuv poll callback (cap-binding.ts). While a flood arrives faster than the capture
 * process handles frames, the ring is never empty, so that callback never returns and the event
 * loop never turns: stdin (spad's credits), stream write callbacks and timers all stop. Before
 * this module the capture process then forwarded nothing to spad for as long as the flood
 * lasted, and every knock in that time was lost: pcap mode could be jammed by any sender faster
 * than one core of ours.
 *
 * So the capture process does its I/O synchronously and, from the packet callback, calls
 * `ChildIo.service()` on the first packet after each SERVICE_NS: credits are read from stdin without blocking, the
 * fair queue is pumped, the shed counts go out once a second, and end of stdin ends the process.
 * The event loop still does the same when it turns (idle periods).
 */
import { readSync, writeSync } from 'node:fs';
import type { RecordSink } from './prefilter.js';

/** How often the packet callback services the pipes while a flood keeps it from returning, ns. */
export const SERVICE_NS = 1_000_000n;

/** Reads bytes without blocking: the count, 0 at end of stream, null when nothing is ready. */
export type ReadNow = (into: Buffer) => number | null;
/** Writes some of `bytes`, returns how many; 0 when the pipe takes nothing now. */
export type WriteNow = (bytes: Buffer) => number;

/** The error code of a non-blocking fd that has nothing to give or no room to take. */
function wouldBlock(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK';
}

/** fd reads for a non-blocking fd (process.stdin made it so): EAGAIN is "nothing ready". */
export function readFd(fd: number): ReadNow {
  return (into) => {
    try {
      return readSync(fd, into, 0, into.length, null);
    } catch (err) {
      if (wouldBlock(err)) return null;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EOF' || code === 'EPIPE' || code === 'ECONNRESET') return 0;
      throw err;
    }
  };
}

/** fd writes; EAGAIN (a non-blocking fd with a full pipe) writes nothing. */
export function writeFd(fd: number): WriteNow {
  return (bytes) => {
    try {
      return writeSync(fd, bytes);
    } catch (err) {
      if (wouldBlock(err)) return 0;
      throw err;
    }
  };
}

/**
 * Records to spad over stdout, written at once: no stream, no write callback that needs the
 * event loop. What the pipe does not take now waits here (writableLength) and goes out at the
 * next flush(); then the callbacks of those writes run.
 */
export class SyncRecordOut implements RecordSink {
  private readonly pending: Array<{ bytes: Buffer; cb?: () => void }> = [];
  private bytes = 0;

  constructor(private readonly writeNow: WriteNow) {}

  get writableLength(): number {
    return this.bytes;
  }

  /** Writes `chunk` (after what is pending). `cb` runs only if the write had to wait. */
  write(chunk: Buffer, cb?: () => void): boolean {
    if (this.pending.length === 0) {
      const n = this.writeNow(chunk);
      if (n === chunk.length) return true;
      chunk = chunk.subarray(n);
    }
    this.pending.push({ bytes: chunk, ...(cb ? { cb } : {}) });
    this.bytes += chunk.length;
    return false;
  }

  /** Writes what is pending; true when nothing is left. */
  flush(): boolean {
    while (this.pending.length > 0) {
      const head = this.pending[0] as { bytes: Buffer; cb?: () => void };
      const n = this.writeNow(head.bytes);
      this.bytes -= n;
      if (n < head.bytes.length) {
        head.bytes = head.bytes.subarray(n);
        return false;
      }
      this.pending.shift();
      head.cb?.();
    }
    return true;
  }
}

export interface ChildIoOptions {
  readonly out: SyncRecordOut;
  readonly readCredits: ReadNow;
  /** spad read `n` more frames. */
  readonly onCredit: (n: number) => void;
  /** About once a second: the shed counts record, or null when nothing changed. */
  readonly filtered: () => Buffer | null;
  /** stdin ended: spad stopped or died. */
  readonly onEnd: () => void;
}

export class ChildIo {
  private lastService = 0n;
  private lastFilteredMs = 0;
  private readonly buf = Buffer.allocUnsafe(4096);
  private ended = false;

  constructor(private readonly o: ChildIoOptions) {}

  /** Called per packet with its hrtime: services the pipes when SERVICE_NS have passed. */
  maybeService(nowNs: bigint): void {
    if (nowNs - this.lastService >= SERVICE_NS) this.service(nowNs);
  }

  /** Reads the credits that are there, writes what waits, and the shed counts once a second. */
  service(nowNs: bigint = process.hrtime.bigint()): void {
    this.lastService = nowNs;
    this.o.out.flush();
    for (;;) {
      if (this.ended) return;
      const n = this.o.readCredits(this.buf);
      if (n === null) break;
      if (n === 0) {
        this.end();
        return;
      }
      this.o.onCredit(n);
    }
    const ms = Number(nowNs / 1_000_000n);
    if (ms - this.lastFilteredMs >= 1000) {
      this.lastFilteredMs = ms;
      const rec = this.o.filtered();
      if (rec) this.o.out.write(rec);
    }
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.o.onEnd();
  }
}
