/**
 * Per-source token buckets in front of decryption (SPEC.md §7 step 4), with bounded memory: at
 * most `maxSources` buckets; when full, the least recently used bucket is forgotten (a Map keeps
 * insertion order, and a hit re-inserts). A forgotten source starts again with a full bucket,
 * which is the safe direction for legitimate users. A global bucket caps the total rate of
 * packets allowed through to public-key work, so a spoofed-source flood is bounded too.
 */
export interface RateLimitOptions {
  /** Packets a source may send at once. */
  burst: number;
  /** Tokens regained per second per source. */
  perSecond: number;
  /** Total packets per second allowed through, across sources. */
  globalPerSecond: number;
  maxSources: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = {
  burst: 10,
  perSecond: 2,
  globalPerSecond: 2000,
  maxSources: 65_536,
};

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private global: Bucket;

  constructor(private readonly opts: RateLimitOptions = DEFAULT_RATE_LIMIT) {
    this.global = { tokens: opts.globalPerSecond, at: 0 };
  }

  /** True when a packet from `source` may go on; takes a token if so. `now` in ms. */
  allow(source: string, now: number): boolean {
    const g = this.global;
    g.tokens = Math.min(
      this.opts.globalPerSecond,
      g.tokens + ((now - g.at) / 1000) * this.opts.globalPerSecond,
    );
    g.at = now;
    let b = this.buckets.get(source);
    if (b) {
      this.buckets.delete(source);
      b.tokens = Math.min(this.opts.burst, b.tokens + ((now - b.at) / 1000) * this.opts.perSecond);
      b.at = now;
    } else {
      b = { tokens: this.opts.burst, at: now };
      if (this.buckets.size >= this.opts.maxSources) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    }
    this.buckets.set(source, b);
    if (b.tokens < 1 || g.tokens < 1) return false;
    b.tokens -= 1;
    g.tokens -= 1;
    return true;
  }

  get sources(): number {
    return this.buckets.size;
  }
}
