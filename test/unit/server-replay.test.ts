import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ReplayStore } from '../../server/replay.js';

const dir = mkdtempSync(join(tmpdir(), 'spa-replay-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('replay store', () => {
  test('an entry is refused until it expires, then forgotten by prune', () => {
    const s = new ReplayStore(join(dir, 'a.jsonl'));
    s.load(1000);
    s.add({ key: 'K', raw: 'R', timestamp: 0, expiresAt: 5000 });
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
    s.add({ key: 'old', raw: 'r-old', timestamp: 0, expiresAt: 100 });
    s.add({ key: 'live', raw: 'r-live', timestamp: 0, expiresAt: 10_000 });
    const t = new ReplayStore(file);
    assert.deepEqual(t.load(500), { loaded: 1, skipped: 0 });
    assert.equal(t.has('live', 500), true);
    assert.equal(t.has('old', 50), false);
    assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 1);
  });

  test('a torn last line after a crash is skipped and the rest still loads', () => {
    const file = join(dir, 'c.jsonl');
    writeFileSync(
      file,
      `${JSON.stringify({ key: 'k1', raw: 'r1', timestamp: 0, expiresAt: 9e12 })}\n{"key":"k2","ra`,
    );
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
      s.add({ key: 'K', raw: 'R', timestamp: 0, expiresAt: 9e12 });
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
    s.add({ key: 'K', raw: 'R', timestamp: 0, expiresAt: 9e12 });
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
    s.add({ key: 'during-outage', raw: 'r1', timestamp: 0, expiresAt: 9e12 });
    assert.equal(s.persisting, false);
    rmSync(base);
    mkdirSync(base);
    s.add({ key: 'after-outage', raw: 'r2', timestamp: 0, expiresAt: 9e12 });
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

describe('replay store across a change of max_skew', () => {
  test('loading with a larger window extends each entry to its timestamp + 2 × the new window', () => {
    const file = join(dir, 'skew.jsonl');
    const s = new ReplayStore(file);
    s.load(0, 120);
    s.add({ key: 'K', raw: 'R', timestamp: 1000, expiresAt: 1_240_000 });
    const t = new ReplayStore(file);
    t.load(1_100_000, 600);
    assert.equal(t.has('K', 2_199_999), true);
    assert.equal(t.hasRaw('R', 2_199_999), true);
    assert.equal(t.has('K', 2_200_000), false);
  });

  test('an expired entry is remembered as forgotten, across compaction and restarts', () => {
    const file = join(dir, 'forgot.jsonl');
    const s = new ReplayStore(file);
    s.load(0);
    s.add({ key: 'K', raw: 'R', timestamp: 1000, expiresAt: 1_240_000 });
    assert.equal(s.forgot(1000), false);
    s.prune(1_300_000);
    assert.equal(s.forgot(1000), true);
    assert.equal(s.forgot(1001), false);
    const t = new ReplayStore(file);
    t.load(1_300_000); // compacts: the expired line goes, the header stays
    assert.equal(t.forgot(1000), true);
    assert.equal(readFileSync(file, 'utf8'), '{"forgottenBefore":1000}\n');
    const u = new ReplayStore(file);
    u.load(1_300_000, 600);
    assert.equal(u.forgot(1000), true);
  });

  test('the source address of an accepted knock survives a restart; a bad one is dropped, the entry kept', () => {
    const file = join(dir, 'source.jsonl');
    const s = new ReplayStore(file);
    s.load(0);
    s.add({ key: 'a', raw: 'ra', timestamp: 0, expiresAt: 10_000, source: '198.51.100.2' });
    s.add({ key: 'b', raw: 'rb', timestamp: 0, expiresAt: 10_000, source: 'x'.repeat(46) });
    const t = new ReplayStore(file);
    t.load(500);
    const live = t.live(500);
    assert.deepEqual(live.find((e) => e.key === 'a')?.source, '198.51.100.2');
    assert.equal(live.find((e) => e.key === 'b')?.source, undefined);
    assert.equal(t.has('b', 500), true);
  });
});
