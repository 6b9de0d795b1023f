/**
 * spad's counters across verifier restarts (`spad status`, the `stop` audit line): those of the
 * running verifier, plus the last ones of each before it, plus the monitor's own. The verifier
 * sends its cumulative counters every second (ipc.ts CountersMessage); a new generation number
 * means a new verifier, whose counts start again from zero.
 */
import type { CountersMessage } from './ipc.js';

export class VerifierCounters {
  private generation = 0;
  private current: Record<string, number> = {};
  private readonly before: Record<string, number> = {};
  /** The capture statistics of the latest report (pcap mode), or null. */
  captureStats: CountersMessage['capture'] = null;

  /** A report from the verifier of `generation`. */
  readonly onCounters = (m: CountersMessage, generation: number): void => {
    if (generation !== this.generation) {
      for (const [k, n] of Object.entries(this.current)) this.before[k] = (this.before[k] ?? 0) + n;
      this.generation = generation;
    }
    this.current = m.counters;
    this.captureStats = m.capture;
  };

  /** Everything so far, with the monitor's own counters added. */
  total(monitor: ReadonlyMap<string, number>): Record<string, number> {
    const all: Record<string, number> = { ...this.before };
    for (const src of [this.current, Object.fromEntries(monitor)])
      for (const [k, n] of Object.entries(src)) all[k] = (all[k] ?? 0) + n;
    return all;
  }
}
