/**
 * Crash-safe file writes and a cross-process lock, for the keyring files.
 *
 * Atomic replace: the new content goes to a temp file in the same directory (same filesystem),
 * is fsync'd, then renamed over the target, and the directory is fsync'd so the rename itself is
 * durable. A reader sees the old file or the new one, never a torn one, even after `kill -9` or a
 * power cut. Exclusive create (`writeFileExclusive`) writes a temp file the same way and then
 * `link`s it to the target name, which fails with EEXIST if the name exists: the file appears
 * whole or not at all, and an existing one is never overwritten.
 *
 * Lock: `<file>.lock`, created with the same link trick (so it is never seen half-written), holding
 * `{pid, host, token, since}`. A lock whose process is gone (same host, `kill(pid, 0)` says ESRCH)
 * is stale: it is broken under a second lock (`<file>.lock.break`) after re-checking that the
 * lock still holds the stale token, so two processes breaking the same stale lock at once never
 * delete a fresh lock taken in between. Waiting is bounded; past the bound the caller gets
 * KEYRING_LOCKED naming the holder. Readers do not lock: renames make every read consistent.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../protocol/errors.js';

const TMP_RE = /^\.(.+)\.(\d+)\.[0-9a-f]{12}\.tmp$/;

function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } catch {
    // some filesystems refuse fsync on a directory; the rename is still atomic there
  } finally {
    await d.close();
  }
}

async function writeTemp(path: string, data: string | Uint8Array, mode: number): Promise<string> {
  const tmp = tempNameFor(path);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.chmod(mode); // the open() mode is filtered by the umask; this is exact
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  return tmp;
}

/** Replaces `path` with `data` atomically and durably; the file gets exactly `mode`. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const tmp = await writeTemp(path, data, mode);
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fsyncDir(dirname(path));
}

/**
 * Creates `path` with `data` and exactly `mode`; never overwrites. Throws ConfigError EXISTS when
 * the name is taken.
 */
export async function writeFileExclusive(
  path: string,
  data: string | Uint8Array,
  mode: number,
): Promise<void> {
  const tmp = await writeTemp(path, data, mode);
  try {
    await link(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ConfigError('EXISTS', `${path} already exists`, { hint: 'refusing to overwrite it' });
    }
    throw e;
  } finally {
    await unlink(tmp).catch(() => {});
  }
  await fsyncDir(dirname(path));
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temp files left by writers that died (their pid is gone). Best effort. */
async function sweepTemps(path: string): Promise<void> {
  const base = basename(path);
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return;
  }
  for (const n of names) {
    const m = TMP_RE.exec(n);
    if (!m || !(m[1] === base || m[1] === `${base}.lock` || m[1] === `${base}.lock.break`)) continue;
    if (!processAlive(Number(m[2]))) await unlink(join(dirname(path), n)).catch(() => {});
  }
  // a break lock left by a process killed while breaking a stale lock
  const b = await readLock(`${path}.lock.break`).catch(() => null);
  if (b !== null && b !== 'unreadable' && isStale(b)) await unlink(`${path}.lock.break`).catch(() => {});
}

interface LockInfo {
  pid: number;
  host: string;
  token: string;
  since: string;
}

async function readLock(path: string): Promise<LockInfo | null | 'unreadable'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.token === 'string' && typeof v.host === 'string') {
      return { pid: v.pid, host: v.host, token: v.token, since: String(v.since ?? '') };
    }
  } catch {
    // fall through
  }
  return 'unreadable';
}

/** Tries to create `path` holding `info`; false when it exists. */
async function tryCreate(path: string, info: LockInfo): Promise<boolean> {
  const tmp = await writeTemp(path, `${JSON.stringify(info)}\n`, 0o600);
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

function isStale(l: LockInfo): boolean {
  return l.host === hostname() && !processAlive(l.pid);
}

/** An unreadable lock file (not ours: we never write one) older than this is treated as stale. */
const UNREADABLE_STALE_MS = 60_000;

async function breakIfStale(lockPath: string, seen: LockInfo | 'unreadable'): Promise<void> {
  if (seen === 'unreadable') {
    const st = await stat(lockPath).catch(() => null);
    if (st && Date.now() - st.mtimeMs > UNREADABLE_STALE_MS) await unlink(lockPath).catch(() => {});
    return;
  }
  if (!isStale(seen)) return;
  const breakPath = `${lockPath}.break`;
  const me: LockInfo = {
    pid: process.pid,
    host: hostname(),
    token: randomBytes(12).toString('hex'),
    since: new Date().toISOString(),
  };
  if (!(await tryCreate(breakPath, me))) {
    // someone else is breaking it; if that breaker died, clear its break lock for the next round
    const b = await readLock(breakPath);
    if (b !== null && b !== 'unreadable' && isStale(b)) await unlink(breakPath).catch(() => {});
    return;
  }
  try {
    const again = await readLock(lockPath);
    if (again !== null && again !== 'unreadable' && again.token === seen.token) {
      await unlink(lockPath).catch(() => {});
    }
  } finally {
    await unlink(breakPath).catch(() => {});
  }
}

export interface LockOptions {
  /** Total time to wait for a live holder, ms (default 10 s). */
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `fn` holding the lock `<target>.lock`. Waits (bounded) for a live holder, breaks a stale
 * one, and always releases, also when `fn` throws.
 */
export async function withLock<T>(target: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const lockPath = `${target}.lock`;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const me: LockInfo = {
    pid: process.pid,
    host: hostname(),
    token: randomBytes(12).toString('hex'),
    since: new Date().toISOString(),
  };
  const start = Date.now();
  let delay = 5;
  let last: LockInfo | 'unreadable' | null = null;
  for (;;) {
    if (await tryCreate(lockPath, me)) break;
    last = await readLock(lockPath);
    if (last !== null) await breakIfStale(lockPath, last);
    if (Date.now() - start > timeoutMs) {
      const who = last && last !== 'unreadable' ? `process ${last.pid} on ${last.host}` : 'another process';
      throw new ConfigError('KEYRING_LOCKED', `${basename(target)} is locked by ${who}`, {
        hint: `wait for it to finish; if no spa-keys process is running, remove ${lockPath}`,
      });
    }
    await sleep(delay + Math.floor(Math.random() * delay));
    delay = Math.min(delay * 2, 100);
  }
  try {
    await sweepTemps(target);
    return await fn();
  } finally {
    const held = await readLock(lockPath).catch(() => null);
    if (held !== null && held !== 'unreadable' && held.token === me.token) {
      await unlink(lockPath).catch(() => {});
    }
  }
}
