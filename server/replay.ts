/**
 * Replay store (SPEC.md §7 steps 5 and 13). Two keys per accepted knock (the pipeline records a
 * knock only once it is accepted), both expiring when the freshness window makes the packet
 * unacceptable anyway (timestamp + 2 × window):
 *  - the knock's replay key (signer fingerprint + signed nonce): the real check;
 *  - the SHA-256 of the encrypted data packet's body (SPEC.md §7 step 5): a fast path that
 *    drops a re-sent datagram before any public-key work.
 * The window may change across a restart (`max_skew`). Loading with a larger window extends every
 * entry to cover it, and the store remembers the newest signed timestamp of any entry it has
 * forgotten (`forgottenBefore`, persisted as the file's first line): a knock signed at or before
 * it may have been used and is refused (`forgot()`). Under an unchanged or smaller window that
 * rule never refuses a fresh knock, since a forgotten entry is older than twice the window.
 * Persisted as an append-only JSON-lines file so a replay after a restart is still refused; the
 * file is compacted (rewritten atomically with live entries only) at load and whenever it holds
 * many dead lines. If the file cannot be written (read-only or full disk), the store keeps
 * working in memory and reports the failure once per change of state, so spad keeps enforcing.
 */
import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';

export interface ReplayEntry {
  key: string;
  raw: string;
  /** The knock's signed timestamp, seconds. */
  timestamp: number;
  /** ms */
  expiresAt: number;
  /**
   * The address the knock was accepted from. After a restart the verifier puts these addresses
   * back in the fair queue's returning-source lane (server/fairqueue.ts), as if it had not
   * restarted; nothing else reads it. Absent in entries written before it was recorded.
   */
  source?: string;
}

export class ReplayStore {
  private readonly keys = new Map<string, ReplayEntry>();
  private readonly raws = new Map<string, number>();
  private lines = 0;
  private writable = true;
  /** Newest signed timestamp (s) among entries forgotten; 0 when none. */
  private forgottenBefore = 0;

  constructor(
    private readonly file: string | null,
    private readonly onPersistError: (err: Error | null) => void = () => {},
  ) {}

  /**
   * Loads the file (missing = empty), drops expired lines, compacts. Corrupt lines are skipped.
   * Every entry is kept at least until its timestamp + 2 × `windowSeconds` (the window now in force).
   */
  load(now: number, windowSeconds = 0): { loaded: number; skipped: number } {
    let loaded = 0;
    let skipped = 0;
    if (this.file) {
      let text = '';
      try {
        text = readFileSync(this.file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      for (const line of text.split('\n')) {
        if (!line) continue;
        try {
          const e = JSON.parse(line) as Partial<ReplayEntry> & { forgottenBefore?: unknown };
          if (typeof e.forgottenBefore === 'number') {
            this.forget(e.forgottenBefore);
            continue;
          }
          if (typeof e.key !== 'string' || typeof e.raw !== 'string' || typeof e.expiresAt !== 'number')
            throw new Error('shape');
          // entries written before timestamps were stored: their expiry bounds the timestamp
          const timestamp = typeof e.timestamp === 'number' ? e.timestamp : e.expiresAt / 1000;
          const expiresAt = Math.max(e.expiresAt, (timestamp + 2 * windowSeconds) * 1000);
          if (expiresAt > now) {
            const source = typeof e.source === 'string' && e.source.length <= 45 ? e.source : undefined;
            this.keys.set(e.key, {
              key: e.key,
              raw: e.raw,
              timestamp,
              expiresAt,
              ...(source ? { source } : {}),
            });
            this.raws.set(e.raw, expiresAt);
            loaded++;
          } else {
            this.forget(timestamp);
          }
        } catch {
          skipped++; // a torn last line after a crash, or garbage
        }
      }
      this.compact(now);
    }
    return { loaded, skipped };
  }

  hasRaw(raw: string, now: number): boolean {
    const exp = this.raws.get(raw);
    return exp !== undefined && exp > now;
  }

  has(key: string, now: number): boolean {
    const e = this.keys.get(key);
    return e !== undefined && e.expiresAt > now;
  }

  /** True when a knock signed at `timestamp` (s) may have been used and forgotten since. */
  forgot(timestamp: number): boolean {
    return timestamp <= this.forgottenBefore;
  }

  private forget(timestamp: number): void {
    if (timestamp > this.forgottenBefore) this.forgottenBefore = timestamp;
  }

  /** Records an accepted knock. Persists before returning (unless the disk refuses). */
  add(entry: ReplayEntry): void {
    this.keys.set(entry.key, entry);
    this.raws.set(entry.raw, entry.expiresAt);
    if (!this.file) return;
    if (!this.writable) {
      // after an outage, appending only the new entry would lose those accepted meanwhile:
      // rewrite every entry we hold (compact reports the recovery)
      this.compact(0);
      return;
    }
    try {
      appendFileSync(this.file, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
      this.lines++;
    } catch (err) {
      if (this.writable) {
        this.writable = false;
        this.onPersistError(err as Error);
      }
    }
  }

  /** Forgets expired entries; compacts the file when it has grown well past the live set. */
  prune(now: number): number {
    let n = 0;
    for (const [k, e] of this.keys) {
      if (e.expiresAt <= now) {
        this.keys.delete(k);
        this.forget(e.timestamp);
        n++;
      }
    }
    for (const [k, exp] of this.raws) if (exp <= now) this.raws.delete(k);
    // while the disk refuses, keep trying to write everything we hold; else compact when worth it
    if (this.file && (!this.writable || (this.lines > 1000 && this.lines > 4 * this.keys.size)))
      this.compact(now);
    return n;
  }

  /** The live entries (spad's monitor hands them to a new verifier for its fast path). */
  live(now: number): ReplayEntry[] {
    return [...this.keys.values()].filter((e) => e.expiresAt > now);
  }

  get size(): number {
    return this.keys.size;
  }

  get persisting(): boolean {
    return this.writable;
  }

  private compact(now: number): void {
    if (!this.file) return;
    const live: string[] = [];
    for (const e of this.keys.values()) {
      if (e.expiresAt > now) live.push(JSON.stringify(e));
      else this.forget(e.timestamp);
    }
    if (this.forgottenBefore > 0) live.unshift(JSON.stringify({ forgottenBefore: this.forgottenBefore }));
    const tmp = `${this.file}.tmp-${process.pid}`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, live.length ? `${live.join('\n')}\n` : '');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
      this.lines = live.length;
      if (!this.writable) {
        this.writable = true;
        this.onPersistError(null);
      }
    } catch (err) {
      if (this.writable) {
        this.writable = false;
        this.onPersistError(err as Error);
      }
    }
  }
}
