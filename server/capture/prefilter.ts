/**
 * Flood shield for the pcap capture process. Before a frame crosses the pipe to spad, the
 * capture process runs the pipeline's own cheapest checks (SPEC.md §7 steps 1-3: decodable UDP,
 * size bounds, OpenPGP framing, a session key for one of our key ids; for fwknop text knocks the
 * same framing once their prefix is rebuilt, §11.1). Frames that fail are junk.
 * The first JUNK_FORWARD_PER_SECOND (server/limits.ts) junk frames each second still go to spad, so at normal rates
 * every drop gets its own audit line exactly as before; beyond that, junk is only counted by
 * reason and reported once a second (spad turns the counts into counters and `drop_summary` audit
 * lines). Without this, a 50,000 datagrams/s flood made spad copy and log every frame and the
 * capture process dropped half of everything, valid knocks included.
 *
 * What may be a knock is never refused here by source or rate (an attacker could spend such a
 * limit for a victim by spoofing its address). It goes to spad as fast as spad reads the pipe;
 * while spad does not (it pauses reading when its own queue is backlogged), `FramePump` holds
 * frames in a fair queue by source and prefix (server/fairqueue.ts) and sends them in that order
 * as the pipe drains, so what is shed is only what spad could not have processed, taken from the
 * busiest sources.
 */
import { precheckVerdict, sizeDrop } from '../../protocol/precheck.js';
import { isSpaError } from '../../protocol/errors.js';
import { fwknopMayBeForUs, looksLikeFwknop } from '../../protocol/fwknop.js';
import { FairQueue } from '../fairqueue.js';
import { JUNK_FORWARD_PER_SECOND, PUMP_CAPACITY } from '../limits.js';
import { decodeFrame } from './decode.js';

/** The drop reason a frame would get in spad's first steps, or null when it may be a knock. */
export function junkReason(
  linkType: number,
  frame: Uint8Array,
  truncated: boolean,
  ourKeyIds: ReadonlySet<string>,
): string | null {
  return classify(linkType, frame, truncated, ourKeyIds).reason;
}

/** One decode per frame: the reason (or null) and, for a possible knock, its source address. */
function classify(
  linkType: number,
  frame: Uint8Array,
  truncated: boolean,
  ourKeyIds: ReadonlySet<string>,
): { reason: string | null; source?: string; port?: number } {
  const r = decodeFrame(linkType, frame, { truncated });
  if (!r.ok) return { reason: 'DECODE' };
  const { length, payload } = r.udp;
  const mayBeKnock = { reason: null, source: r.udp.source, port: r.udp.sourcePort };
  // step 1 on the UDP length, so a frame cut at the snap length still gets PKT_TOO_LONG
  const size = sizeDrop(length);
  if (size !== null) return { reason: size };
  if (payload.length < length) return { reason: 'DECODE' };
  // fwknop GPG-mode knocks are base64 text (SPEC.md §11.1): framing checked once rebuilt
  if (looksLikeFwknop(payload)) {
    return fwknopMayBeForUs(payload, ourKeyIds) ? mayBeKnock : { reason: 'PKT_FRAMING' };
  }
  // steps 1-3 as spad's pipeline runs them (protocol/precheck.ts), without exceptions
  // for the refusals a flood makes most
  try {
    const verdict = precheckVerdict(payload, ourKeyIds);
    return typeof verdict === 'string' ? { reason: verdict } : mayBeKnock;
  } catch (err) {
    return { reason: isSpaError(err) ? err.code : 'PKT_FRAMING' };
  }
}

export class Prefilter {
  private second = 0;
  private forwarded = 0;
  private readonly counts = new Map<string, number>();
  private dirty = false;

  constructor(
    private readonly ourKeyIds: ReadonlySet<string>,
    private readonly perSecond = JUNK_FORWARD_PER_SECOND,
  ) {}

  /**
   * What to do with a frame: `{ source, port }` when it may be a knock (always passed on), `{ junk }`
   * (its drop reason) for junk within this second's allowance (passed on to be audited), null
   * when it is shed (and counted). `nowMs` is the wall clock.
   */
  judge(
    linkType: number,
    frame: Uint8Array,
    truncated: boolean,
    nowMs: number,
  ): { source: string; port: number } | { junk: string } | null {
    const c = classify(linkType, frame, truncated, this.ourKeyIds);
    if (c.reason === null) return { source: c.source ?? '', port: c.port ?? 0 };
    const s = Math.floor(nowMs / 1000);
    if (s !== this.second) {
      this.second = s;
      this.forwarded = 0;
    }
    if (this.forwarded < this.perSecond) {
      this.forwarded++;
      return { junk: c.reason };
    }
    this.shed(c.reason);
    return null;
  }

  /** True when the frame should go to spad (judge() without the source). */
  pass(linkType: number, frame: Uint8Array, truncated: boolean, nowMs: number): boolean {
    return this.judge(linkType, frame, truncated, nowMs) !== null;
  }

  /** Counts a frame not forwarded, by reason. */
  shed(reason: string, n = 1): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + n);
    this.dirty = true;
  }

  /** Cumulative counts of junk not forwarded, by reason, when they changed since the last call. */
  takeCounts(): Record<string, number> | null {
    if (!this.dirty) return null;
    this.dirty = false;
    return Object.fromEntries(this.counts);
  }
}

/** The part of a writable stream FramePump uses (the capture process's stdout). */
export interface RecordSink {
  readonly writableLength: number;
  write(chunk: Buffer, cb: () => void): boolean;
}

/**
 * Sends records to spad while spad has credit for them (spad returns one per frame it read, and
 * withholds them while its pipeline is backlogged) and the pipe takes them without buffering;
 * otherwise holds the ones that may be knocks in a fair queue and sends them in fair order as
 * credit comes back. So at most `credits` records wait in the pipe in arrival order, and at most
 * one in the stream's buffer.
 */
export class FramePump {
  private readonly queue: FairQueue<Buffer>;
  private readonly pump = (): void => {
    while (this.queue.size > 0 && this.free()) this.send(this.queue.shift() as Buffer);
  };

  constructor(
    private readonly sink: RecordSink,
    /** Called once per record shed from a full queue. */
    private readonly onShed: () => void,
    capacity = PUMP_CAPACITY,
    /** Records spad takes before it returns credit; Infinity: limited by the pipe only. */
    private credits = Number.POSITIVE_INFINITY,
  ) {
    this.queue = new FairQueue({ capacity });
  }

  /** spad read `n` more records. */
  credit(n: number): void {
    this.credits += n;
    this.pump();
  }

  private free(): boolean {
    return this.credits > 0 && this.sink.writableLength === 0;
  }

  private send(record: Buffer): void {
    this.credits--;
    this.sink.write(record, this.pump);
  }

  /**
   * A frame that may be a knock from `source`, `port`; `record()` encodes it, called only when it
   * is sent or queued (a flood the queue would shed at once costs no copy).
   */
  knock(record: () => Buffer, source: string, nowMs: number, port = 0): void {
    if (this.queue.size === 0 && this.free()) {
      this.send(record());
      return;
    }
    if (!this.queue.admits(source, nowMs, port)) {
      this.onShed();
      return;
    }
    if (this.queue.push(record(), source, nowMs, port) !== undefined) this.onShed();
    this.pump();
  }

  /** A junk record (to be audited by spad): sent only when the pipe is free, else false (shed). */
  junk(record: Buffer): boolean {
    if (!this.free()) return false;
    this.send(record);
    return true;
  }

  get queued(): number {
    return this.queue.size;
  }
}
