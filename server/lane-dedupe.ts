/**
 * In pcap mode with nftables, a returning source's datagram to the SPA port reaches the verifier
 * twice: through libpcap (the capture process) and through the kernel's returning lane (the
 * monitor's socket, reply-socket.ts). Whichever copy comes first is handled; the other is
 * dropped here, unlogged (its twin was logged), and counted as LANE_DUPLICATE.
 *
 * Copies are the same source, source port and bytes, seen through the other path within
 * LANE_DUPLICATE_MS. The same datagram twice through one path is not a copy: the replay check
 * handles it. Only lane datagrams and captured datagrams of returning sources are remembered,
 * at most LANE_DUPLICATE_MAX (oldest forgotten first), so a flood of captured frames from other
 * addresses costs nothing here.
 */
import type { Datagram } from './capture/types.js';

export type LanePath = 'capture' | 'lane';

/** How long the first copy is remembered, ms: both paths deliver within milliseconds. */
export const LANE_DUPLICATE_MS = 5000;
export const LANE_DUPLICATE_MAX = 1024;

export class LaneDedupe {
  /** key → path and time (ms) of its first copy; insertion order is arrival order. */
  private readonly seen = new Map<string, { path: LanePath; at: number }>();

  constructor(
    private readonly now: () => number,
    /** Whether a captured datagram's source is returning (only those can have a lane copy). */
    private readonly returning: (source: string) => boolean,
  ) {}

  /** True when `d` is the second copy of a datagram already handled through the other path. */
  duplicate(d: Datagram, path: LanePath): boolean {
    if (d.oversize || d.payload.length === 0) return false;
    if (path === 'capture' && !this.returning(d.source)) return false;
    const now = this.now();
    this.expire(now);
    const key = `${d.source} ${d.sourcePort} ${d.payload.toString('base64')}`;
    const first = this.seen.get(key);
    if (first && first.path !== path) {
      this.seen.delete(key);
      return true;
    }
    if (!first) {
      this.seen.set(key, { path, at: now });
      if (this.seen.size > LANE_DUPLICATE_MAX) this.forgetOldest();
    }
    return false;
  }

  get size(): number {
    return this.seen.size;
  }

  private expire(now: number): void {
    for (const [key, v] of this.seen) {
      if (now - v.at < LANE_DUPLICATE_MS) return;
      this.seen.delete(key);
    }
  }

  private forgetOldest(): void {
    const oldest = this.seen.keys().next().value;
    if (oldest !== undefined) this.seen.delete(oldest);
  }
}
