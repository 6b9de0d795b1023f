/**
 * The `spa` bin's fast start (client/cli.ts, client/load-bundle.ts, scripts/bundle-client.ts):
 * the build leaves a one-file bundle and a code cache V8 accepts, and a cache that is not the
 * bundle's own (another build, or damaged bytes) is left unused while the bundle still runs.
 * Each case runs in a child process, as the bin does, so the test runner's flags play no part.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BUILD_ID_LENGTH, BUNDLE_FILE, CACHE_FILE } from '../../client/load-bundle.js';

const DIST_CLIENT = fileURLToPath(new URL('../../client/', import.meta.url));
const LOADER = join(DIST_CLIENT, 'load-bundle.js');

/** Loads the bundle in `dir` in a fresh node, runs `spa --help`, reports cacheUsed and the exit code. */
function probe(dir: string): Promise<{ cacheUsed: boolean; code: number; usage: boolean }> {
  const script = `
    import { loadBundle } from ${JSON.stringify(LOADER)};
    const b = loadBundle(${JSON.stringify(dir)});
    let out = '';
    process.stdout.write = (s) => { out += s; return true; };
    const code = await b.main(['--help']);
    console.error(JSON.stringify({ cacheUsed: b.cacheUsed, code, usage: out.includes('Usage: spa') }));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], (err, _stdout, stderr) => {
      if (err) reject(new Error(`probe failed: ${stderr}`));
      else resolve(JSON.parse(stderr.trim().split('\n').pop() ?? '{}'));
    });
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'spa-bundle-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function bundleCopy(name: string, mutate: (cache: Buffer) => void): string {
  const dir = mkdtempSync(join(tmp, `${name}-`));
  copyFileSync(join(DIST_CLIENT, BUNDLE_FILE), join(dir, BUNDLE_FILE));
  const cache = readFileSync(join(DIST_CLIENT, CACHE_FILE));
  mutate(cache);
  writeFileSync(join(dir, CACHE_FILE), cache);
  return dir;
}

test('the build leaves the spa bundle and a code cache that V8 accepts', async () => {
  assert.ok(existsSync(join(DIST_CLIENT, BUNDLE_FILE)), `${BUNDLE_FILE} was built`);
  assert.deepEqual(await probe(DIST_CLIENT), { cacheUsed: true, code: 0, usage: true });
});

test('a code cache made for another build of the bundle is not used, and spa still runs', async () => {
  const dir = bundleCopy('other-build', (cache) => {
    // another build id: flip the first hex digit
    cache[0] = cache[0] === 0x30 ? 0x31 : 0x30;
  });
  assert.deepEqual(await probe(dir), { cacheUsed: false, code: 0, usage: true });
});

test('a damaged code cache is refused by V8, and spa still runs', async () => {
  const dir = bundleCopy('damaged', (cache) => {
    for (let i = BUILD_ID_LENGTH; i < BUILD_ID_LENGTH + 16; i++) cache[i] = (cache[i] ?? 0) ^ 0xff;
  });
  assert.deepEqual(await probe(dir), { cacheUsed: false, code: 0, usage: true });
});
