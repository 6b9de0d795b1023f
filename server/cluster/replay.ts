/**
 * The fleet's shared replay record (SPEC.md §7 step 13, with a cluster): one Redis key per
 * accepted knock, `spa:replay:<replay key>` (the local store's key: signer fingerprint + signed
 * nonce), written with `SET key owner NX PX ttl`. Redis runs commands one at a time, so of any
 * number of gateways claiming the same knock exactly one gets OK; the others get nil and refuse
 * it as REPLAY. The key expires with the knock's freshness window, like the local entry.
 *
 * A claim is made only for a knock that passed every step up to the decision (recorded only when
 * accepted); if acting then fails (FW_ERROR), the claim is released by a compare-and-delete on
 * the owner token, so a claim another gateway made is never deleted.
 */
import { randomBytes } from 'node:crypto';
import type { ClusterLink } from './connection.js';
import { KEY_PREFIX } from './settings.js';

export type ClaimResult = { kind: 'claimed' } | { kind: 'taken' } | { kind: 'unavailable'; reason: string };

/** Deletes KEYS[1] only if it still holds ARGV[1] (our token). */
const RELEASE =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

export const replayRedisKey = (key: string): string => `${KEY_PREFIX}replay:${key}`;

export class SharedReplay {
  /** This gateway's token: what its claims hold, so a release deletes only its own. */
  readonly owner: string;
  readonly counters = { claimed: 0, taken: 0, unavailable: 0, released: 0 };

  constructor(
    private readonly link: ClusterLink,
    gateway: string,
  ) {
    this.owner = `${gateway}:${randomBytes(8).toString('hex')}`;
  }

  /** Claims the knock for `ttlMs` (at least 1 ms). Never throws. */
  async claim(key: string, ttlMs: number): Promise<ClaimResult> {
    if (!this.link.up) {
      this.counters.unavailable++;
      return { kind: 'unavailable', reason: `redis ${this.link.status.state}` };
    }
    try {
      const r = await this.link.redis.set(
        replayRedisKey(key),
        this.owner,
        'PX',
        Math.max(1, Math.ceil(ttlMs)),
        'NX',
      );
      if (r === 'OK') {
        this.counters.claimed++;
        return { kind: 'claimed' };
      }
      this.counters.taken++;
      return { kind: 'taken' };
    } catch (err) {
      this.counters.unavailable++;
      return { kind: 'unavailable', reason: (err as Error).message };
    }
  }

  /** Gives a claim back (acting failed). Best effort: a claim left behind only expires. */
  async release(key: string): Promise<boolean> {
    try {
      const n = await this.link.redis.eval(RELEASE, 1, replayRedisKey(key), this.owner);
      if (n === 1) this.counters.released++;
      return n === 1;
    } catch {
      return false;
    }
  }
}
