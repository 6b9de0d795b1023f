import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { RateLimiter } from '../../server/ratelimit.js';
import { ReplayStore } from '../../server/replay.js';

const dir = mkdtempSync(join(tmpdir(), 'spa-replay-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('replay store', () => {
  test('an entry is refused until it expires, then forgotten by prune', () => {
    const s = new ReplayStore(join(dir, 'a.jsonl'));
    s.load(1000);
    s.add({ key: 'K', raw: 'R', expiresAt: 5000 });
    assert.equal(s.has('K', 4999), true);
    assert.equal(s.hasRaw('R', 4999), true);
    assert.equal(s.has('K', 5000), false);
    assert.equal(s.prune(6000), 1);
    assert.equal(s.size, 0);
  });

  test('entries survive a restart and expired ones are compacted away at load', () => {
    const file = join(dir, 'b.jsonl');
    const s = new ReplayStore(file);
    s.load(0);
    s.add({ key: 'old', raw: 'r-old', expiresAt: 100 });
    s.add({ key: 'live', raw: 'r-live', expiresAt: 10_000 });
    const t = new ReplayStore(file);
    assert.deepEqual(t.load(500), { loaded: 1, skipped: 0 });
    assert.equal(t.has('live', 500), true);
    assert.equal(t.has('old', 50), false);
    assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 1);
  });

  test('a torn last line after a crash is skipped and the rest still loads', () => {
    const file = join(dir, 'c.jsonl');
    writeFileSync(file, `${JSON.stringify({ key: 'k1', raw: 'r1', expiresAt: 9e12 })}\n{"key":"k2","ra`);
    const s = new ReplayStore(file);
    assert.deepEqual(s.load(0), { loaded: 1, skipped: 1 });
    assert.equal(s.has('k1', 1), true);
  });

  test('a read-only state dir keeps refusing replays from memory and reports the persistence failure', (t) => {
    if (process.getuid?.() === 0) {
      // root ignores file modes; use a path whose parent is a file instead
      const blocker = join(dir, 'not-a-dir');
      writeFileSync(blocker, '');
      const errors: Array<Error | null> = [];
      const s = new ReplayStore(join(blocker, 'replay.jsonl'), (e) => errors.push(e));
      s.add({ key: 'K', raw: 'R', expiresAt: 9e12 });
      assert.equal(s.has('K', 1), true);
      assert.equal(s.persisting, false);
      assert.equal(errors.length, 1);
      return;
    }
    const ro = join(dir, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    t.after(() => chmodSync(ro, 0o700));
    const s = new ReplayStore(join(ro, 'replay.jsonl'));
    s.add({ key: 'K', raw: 'R', expiresAt: 9e12 });
    assert.equal(s.has('K', 1), true);
    assert.equal(s.persisting, false);
  });
});

describe('replay store recovery', () => {
  test('entries accepted while the disk refused writes are all persisted once it accepts them again', () => {
    const base = join(dir, 'recover');
    writeFileSync(base, ''); // a file where the directory should be: every write fails
    const events: Array<Error | null> = [];
    const s = new ReplayStore(join(base, 'replay.jsonl'), (e) => events.push(e));
    s.add({ key: 'during-outage', raw: 'r1', expiresAt: 9e12 });
    assert.equal(s.persisting, false);
    rmSync(base);
    mkdirSync(base);
    s.add({ key: 'after-outage', raw: 'r2', expiresAt: 9e12 });
    assert.equal(s.persisting, true);
    assert.deepEqual(
      events.map((e) => e === null),
      [false, true],
    );
    const restarted = new ReplayStore(join(base, 'replay.jsonl'));
    restarted.load(1);
    assert.equal(restarted.has('during-outage', 1), true, 'the outage entry survived the restart');
    assert.equal(restarted.has('after-outage', 1), true);
  });
});

describe('rate limiter', () => {
  test('a source gets its burst, then one packet per refill interval', () => {
    const r = new RateLimiter({ burst: 2, perSecond: 1, globalPerSecond: 100, maxSources: 10 });
    assert.deepEqual([r.allow('a', 0), r.allow('a', 0), r.allow('a', 0)], [true, true, false]);
    assert.equal(r.allow('a', 999), false);
    assert.equal(r.allow('a', 1000), true);
  });

  test('memory stays bounded: the table never holds more than maxSources sources', () => {
    const r = new RateLimiter({ burst: 1, perSecond: 1, globalPerSecond: 1e9, maxSources: 100 });
    for (let i = 0; i < 10_000; i++) r.allow(`198.51.100.${i}`, 0);
    assert.equal(r.sources, 100);
  });

  test('the global budget caps a spoofed-source flood', () => {
    const r = new RateLimiter({ burst: 5, perSecond: 1, globalPerSecond: 10, maxSources: 1000 });
    let allowed = 0;
    for (let i = 0; i < 100; i++) if (r.allow(`src${i}`, 0)) allowed++;
    assert.equal(allowed, 10);
  });
});
