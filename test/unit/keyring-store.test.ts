/**
 * The keyring files under concurrency and crashes: atomic replace, exclusive create, the lock
 * (live holder, dead holder, break races), two processes adding at once, and kill -9 during a
 * write loop.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  addRecord,
  allowlistPath,
  buildRecord,
  initServer,
  loadAllowlist,
  readAllowlistFile,
} from '../../keyring/allowlist.js';
import { withLock, writeFileAtomic, writeFileExclusive } from '../../keyring/atomic.js';
import { inspectKey } from '../../keyring/inspect.js';
import { allowlistFileSchema, type KeyRecord } from '../../keyring/schema.js';
import { updateStore } from '../../keyring/store.js';
import { ConfigError } from '../../protocol/errors.js';
import { KEYRING_INDEX, makeKey, spawnKeys, withTmp } from './keyring-helpers.js';

const mode = async (p: string) => (await stat(p)).mode & 0o777;

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['-e', '0']);
    c.on('error', reject);
    c.on('exit', () => resolve(c.pid as number));
  });
}

function fakeRecord(i: number, publicKey: string): KeyRecord {
  const fpr = (i.toString(16).toUpperCase().padStart(8, '0') + 'A'.repeat(32)).slice(0, 40);
  return {
    fingerprint: fpr,
    username: `user${i}`,
    publicKey,
    signingFingerprints: [fpr],
    userIds: [`User ${i} <user${i}@example.test>`],
    algorithm: 'ed25519',
    createdAt: new Date(0).toISOString(),
    enabled: true,
    expiresAt: null,
    sources: 'any',
    openPorts: ['tcp/22'],
    requireSourceAddress: true,
    defaultTimeout: 30,
    maxTimeout: 300,
    command: null,
  };
}

describe('atomic files', () => {
  it('replaces a file whole and gives it exactly the requested mode whatever the umask', async () => {
    await withTmp(async (dir) => {
      const p = join(dir, 'f.json');
      const old = process.umask(0o000);
      try {
        await writeFileAtomic(p, 'one', 0o600);
        assert.equal(await mode(p), 0o600);
        await writeFileAtomic(p, 'two', 0o644);
      } finally {
        process.umask(old);
      }
      assert.equal(await readFile(p, 'utf8'), 'two');
      assert.equal(await mode(p), 0o644);
      assert.deepEqual(await readdir(dir), ['f.json'], 'no temp file left behind');
    });
  });

  it('refuses to overwrite an existing file on exclusive create and leaves it untouched', async () => {
    await withTmp(async (dir) => {
      const p = join(dir, 'server.key');
      await writeFileExclusive(p, 'secret', 0o600);
      await assert.rejects(writeFileExclusive(p, 'other', 0o600), (e: unknown) => {
        return e instanceof ConfigError && e.code === 'EXISTS';
      });
      assert.equal(await readFile(p, 'utf8'), 'secret');
      assert.equal(await mode(p), 0o600);
      assert.deepEqual(await readdir(dir), ['server.key']);
    });
  });
});

describe('lock', () => {
  it('serializes concurrent updates in one process so none is lost', async () => {
    await withTmp(async (dir) => {
      const k = await makeKey();
      await initServer(dir);
      await Promise.all(Array.from({ length: 20 }, (_, i) => addRecord(dir, fakeRecord(i, k.publicKey))));
      const al = await loadAllowlist(dir);
      assert.equal(al.records.size, 20);
    });
  });

  it('times out with KEYRING_LOCKED naming the holder when a live process keeps the lock', async () => {
    await withTmp(async (dir) => {
      const target = join(dir, 'keyring.json');
      const info = { pid: process.pid, host: (await import('node:os')).hostname(), token: 'x', since: '' };
      await writeFile(`${target}.lock`, JSON.stringify(info));
      await assert.rejects(
        withLock(target, async () => 'ran', { timeoutMs: 150 }),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.code === 'KEYRING_LOCKED' &&
          e.message.includes(`process ${process.pid}`) &&
          (e.hint ?? '').includes(`${target}.lock`),
      );
      // the live holder's lock is still there
      assert.equal(JSON.parse(await readFile(`${target}.lock`, 'utf8')).token, 'x');
    });
  });

  it('breaks a lock (and a break lock) left by processes that died, and runs', async () => {
    await withTmp(async (dir) => {
      const target = join(dir, 'keyring.json');
      const pid = await deadPid();
      const info = { pid, host: (await import('node:os')).hostname(), token: 'dead', since: '' };
      await writeFile(`${target}.lock`, JSON.stringify(info));
      await writeFile(join(dir, `.keyring.json.${pid}.0123456789ab.tmp`), 'torn');
      // and a breaker that died while breaking it
      await writeFile(`${target}.lock.break`, JSON.stringify({ ...info, token: 'dead-breaker' }));
      const r = await withLock(target, async () => 'ran', { timeoutMs: 2000 });
      assert.equal(r, 'ran');
      assert.deepEqual(await readdir(dir), [], 'stale locks and the dead writer temp file are gone');
    });
  });

  it('lets only one of many contenders through when they all find the same stale lock', async () => {
    await withTmp(async (dir) => {
      const target = join(dir, 'keyring.json');
      const pid = await deadPid();
      const info = { pid, host: (await import('node:os')).hostname(), token: 'dead', since: '' };
      await writeFile(`${target}.lock`, JSON.stringify(info));
      let inside = 0;
      let maxInside = 0;
      await Promise.all(
        Array.from({ length: 8 }, () =>
          withLock(target, async () => {
            inside++;
            maxInside = Math.max(maxInside, inside);
            await new Promise((r) => setTimeout(r, 5));
            inside--;
          }),
        ),
      );
      assert.equal(maxInside, 1);
    });
  });

  it('releases the lock when the update throws and writes nothing', async () => {
    await withTmp(async (dir) => {
      await initServer(dir);
      const before = await readFile(allowlistPath(dir), 'utf8');
      await assert.rejects(
        updateStore(allowlistPath(dir), allowlistFileSchema, 0o600, () => {
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(await readFile(allowlistPath(dir), 'utf8'), before);
      assert.ok(!(await readdir(dir)).includes('keyring.json.lock'));
    });
  });
});

describe('two processes', () => {
  it('two spa-keys add started at once both land', async () => {
    await withTmp(async (dir) => {
      await initServer(join(dir, 's'));
      for (let round = 0; round < 3; round++) {
        const a = await makeKey({ name: `A${round}` });
        const b = await makeKey({ name: `B${round}` });
        await writeFile(join(dir, 'a.asc'), a.publicKey);
        await writeFile(join(dir, 'b.asc'), b.publicKey);
        const base = ['add', '--state-dir', join(dir, 's'), '--open', 'tcp/22', '--yes'];
        const [ra, rb] = await Promise.all([
          spawnKeys([...base, '--user', `a${round}`, '--key', join(dir, 'a.asc')]),
          spawnKeys([...base, '--user', `b${round}`, '--key', join(dir, 'b.asc')]),
        ]);
        assert.equal(ra.code, 0, ra.stderr);
        assert.equal(rb.code, 0, rb.stderr);
        const al = await loadAllowlist(join(dir, 's'));
        assert.ok(al.records.has(a.fingerprint) && al.records.has(b.fingerprint), `round ${round}`);
      }
      assert.equal((await loadAllowlist(join(dir, 's'))).records.size, 6);
      assert.equal(await mode(allowlistPath(join(dir, 's'))), 0o600);
    });
  });

  it('two processes each adding 25 records in a loop lose none of the 50', async () => {
    await withTmp(async (dir) => {
      await initServer(dir);
      const k = await makeKey();
      await writeFile(join(dir, 'pub.asc'), k.publicKey);
      const child = (from: number) =>
        new Promise<number>((resolve, reject) => {
          const code = `
            import { addRecord } from ${JSON.stringify(KEYRING_INDEX)};
            import { readFileSync } from 'node:fs';
            const pub = readFileSync(${JSON.stringify(join(dir, 'pub.asc'))}, 'utf8');
            for (let i = ${from}; i < ${from + 25}; i++) {
              const fpr = (i.toString(16).toUpperCase().padStart(8, '0') + 'B'.repeat(32)).slice(0, 40);
              await addRecord(${JSON.stringify(dir)}, { fingerprint: fpr, username: 'u' + i, publicKey: pub,
                signingFingerprints: [fpr], userIds: [], algorithm: 'ed25519', createdAt: new Date().toISOString(),
                enabled: true, expiresAt: null, sources: 'any', openPorts: ['tcp/22'], requireSourceAddress: true,
                defaultTimeout: 30, maxTimeout: 300, command: null });
            }`;
          const c = spawn(process.execPath, ['--input-type=module', '-e', code], {
            stdio: ['ignore', 'ignore', 'inherit'],
          });
          const t = setTimeout(() => c.kill('SIGKILL'), 60_000);
          c.on('error', reject);
          c.on('exit', (code) => {
            clearTimeout(t);
            resolve(code ?? -1);
          });
        });
      const codes = await Promise.all([child(0), child(1000)]);
      assert.deepEqual(codes, [0, 0]);
      assert.equal((await loadAllowlist(dir)).records.size, 50);
    });
  });
});

describe('crash safety', () => {
  it('kill -9 during a loop of atomic writes of a 4 MB file always leaves one whole version', async () => {
    await withTmp(async (dir) => {
      const target = join(dir, 'big.json');
      const atomicJs = KEYRING_INDEX.replace(/index\.js$/, 'atomic.js');
      const code = `
        import { writeFileAtomic } from ${JSON.stringify(atomicJs)};
        const a = 'a'.repeat(4 << 20), b = 'b'.repeat(4 << 20);
        await writeFileAtomic(${JSON.stringify(target)}, a, 0o600);
        process.stdout.write('ready\\n');
        for (let n = 0; n < 1e6; n++) await writeFileAtomic(${JSON.stringify(target)}, n % 2 ? a : b, 0o600);`;
      for (let round = 0; round < 6; round++) {
        const c = spawn(process.execPath, ['--input-type=module', '-e', code], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('child never started')), 30_000);
          c.stdout.once('data', () => {
            clearTimeout(t);
            resolve();
          });
        });
        await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 200)));
        const exited = new Promise((r) => c.on('exit', r));
        c.kill('SIGKILL');
        await exited;
        const text = await readFile(target, 'utf8');
        assert.equal(text.length, 4 << 20, `round ${round}: torn file of ${text.length} bytes`);
        // the kill lands at a random point of the writer's loop, so either version may be the
        // last complete one: what must not happen is a mix
        assert.ok(
          text === 'a'.repeat(4 << 20) || text === 'b'.repeat(4 << 20),
          `round ${round}: mixed content`,
        );
      }
    });
  });

  it('kill -9 at random moments of a write loop always leaves a valid keyring, and the next writer proceeds', async () => {
    await withTmp(async (dir) => {
      await initServer(dir);
      const k = await makeKey();
      // a large file widens the window in which a kill lands mid-write
      for (let i = 0; i < 200; i++) await addRecord(dir, fakeRecord(i, k.publicKey));
      const code = `
        import { setEnabled, addRecord, removeRecord } from ${JSON.stringify(KEYRING_INDEX)};
        const dir = ${JSON.stringify(dir)};
        let on = false;
        process.stdout.write('ready\\n');
        for (let n = 0; n < 100000; n++) {
          await setEnabled(dir, 'user' + (n % 200), on = !on);
        }`;
      let kills = 0;
      for (let round = 0; round < 8; round++) {
        const c = spawn(process.execPath, ['--input-type=module', '-e', code], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let err = '';
        c.stderr.on('data', (d) => {
          err += d;
        });
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('child never started')), 30_000);
          c.stdout.once('data', () => {
            clearTimeout(t);
            resolve();
          });
          c.on('exit', () => reject(new Error(`child exited early: ${err}`)));
        });
        await new Promise((r) => setTimeout(r, 30 + Math.floor(Math.random() * 250)));
        const exited = new Promise((r) => c.on('exit', r));
        c.kill('SIGKILL');
        await exited;
        kills++;
        // the file must parse and validate, whatever the moment of the kill
        const f = await readAllowlistFile(dir);
        assert.equal(Object.keys(f.keys).length, 200, `round ${round}`);
      }
      assert.equal(kills, 8);
      // a lock left by the last killed writer does not block the next one for long
      const next = await makeKey({ name: 'Next' });
      const info = await inspectKey(next.publicKey);
      await addRecord(
        dir,
        buildRecord(
          info,
          next.publicKey,
          {
            username: 'next',
            sources: 'any',
            openPorts: ['tcp/22'],
            requireSourceAddress: true,
            defaultTimeout: 30,
            maxTimeout: 300,
            expiresAt: null,
            command: null,
          },
          new Date(),
        ),
      );
      assert.equal((await loadAllowlist(dir)).records.size, 201);
      const left = (await readdir(dir)).filter((n) => n.endsWith('.tmp') || n.endsWith('.lock'));
      assert.deepEqual(left, [], 'temp files and locks of killed writers are cleaned up');
    });
  });
});
