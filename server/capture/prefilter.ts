/**
 * Flood shield for the pcap capture process. Before a frame crosses the pipe to spad, the
 * capture process runs the pipeline's own cheapest checks (SPEC.md §7 steps 1-4: decodable UDP,
 * size bounds, OpenPGP framing, a session key for one of our key ids, and the per-source rate
 * limit with spad's settings). Frames that fail are junk.
 * The first JUNK_FORWARD_PER_SECOND junk frames each second still go to spad, so at normal rates
 * every drop gets its own audit line exactly as before; beyond that, junk is only counted by
 * reason and reported once a second (spad turns the counts into counters and `drop_summary` audit
 * lines). Without this, a 50,000 datagrams/s flood made spad copy and log every frame and the
 * capture process dropped half of everything, valid knocks included.
 */
import { PACKET_MAX_BYTES, PACKET_MIN_BYTES } from '../../protocol/limits.js';
import { isForUs, parseFraming } from '../../protocol/framing.js';
import { isSpaError } from '../../protocol/errors.js';
import type { RateLimiter } from '../ratelimit.js';
import { decodeFrame } from './decode.js';

export const JUNK_FORWARD_PER_SECOND = 50;

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
): { reason: string | null; source?: string } {
  const r = decodeFrame(linkType, frame, { truncated });
  if (!r.ok) return { reason: 'DECODE' };
  const { length, payload } = r.udp;
  if (length < PACKET_MIN_BYTES) return { reason: 'PKT_TOO_SHORT' };
  if (length > PACKET_MAX_BYTES) return { reason: 'PKT_TOO_LONG' };
  if (payload.length < length) return { reason: 'DECODE' };
  try {
    return isForUs(parseFraming(payload), ourKeyIds)
      ? { reason: null, source: r.udp.source }
      : { reason: 'PKT_NOT_FOR_US' };
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
    /** spad's per-source limits, applied here too so one source's flood never crosses the pipe. */
    private readonly rate: RateLimiter | null = null,
  ) {}

  /** True when the frame should go to spad. `nowMs` is the wall clock. */
  pass(linkType: number, frame: Uint8Array, truncated: boolean, nowMs: number): boolean {
    const c = classify(linkType, frame, truncated, this.ourKeyIds);
    let reason = c.reason;
    if (reason === null && this.rate && c.source !== undefined && !this.rate.allow(c.source, nowMs))
      reason = 'RATE_LIMITED';
    if (reason === null) return true;
    const s = Math.floor(nowMs / 1000);
    if (s !== this.second) {
      this.second = s;
      this.forwarded = 0;
    }
    if (this.forwarded < this.perSecond) {
      this.forwarded++;
      return true;
    }
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    this.dirty = true;
    return false;
  }

  /** Cumulative counts of junk not forwarded, by reason, when they changed since the last call. */
  takeCounts(): Record<string, number> | null {
    if (!this.dirty) return null;
    this.dirty = false;
    return Object.fromEntries(this.counts);
  }
}
