/**
 * spad's command line without a network: --check, usage errors and the passphrase of a
 * protected server key. Spawns the real binary.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = (bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, bin), ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
const dir = mkdtempSync(join(tmpdir(), 'spa-spad-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('spad --check accepts a fresh state dir and names the server key', async () => {
  const state = join(dir, 'plain');
  assert.equal((await run('keyring/cli.js', ['init', '--state-dir', state])).code, 0);
  const r = await run('server/cli.js', ['--check', '--udp-server', '--state-dir', state]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^spad: ok: server key [0-9A-F]{40}, 0 enrolled key\(s\)/);
});

test('a passphrase-protected server key needs --passphrase-file, and a wrong one is a key error', async () => {
  const state = join(dir, 'protected');
  const pass = join(dir, 'pass');
  writeFileSync(pass, 'correct horse\n', { mode: 0o600 });
  assert.equal(
    (await run('keyring/cli.js', ['init', '--state-dir', state, '--passphrase-file', pass])).code,
    0,
  );
  const without = await run('server/cli.js', ['--check', '--udp-server', '--state-dir', state]);
  assert.equal(without.code, 3);
  assert.match(without.stderr, /^spa: error: /m);
  assert.equal(
    (await run('server/cli.js', ['--check', '--udp-server', '--state-dir', state, '--passphrase-file', pass]))
      .code,
    0,
  );
  writeFileSync(join(dir, 'wrong'), 'wrong\n', { mode: 0o600 });
  const wrong = await run('server/cli.js', [
    '--check',
    '--udp-server',
    '--state-dir',
    state,
    '--passphrase-file',
    join(dir, 'wrong'),
  ]);
  assert.equal(wrong.code, 3);
});

test('spad without a capture mode, or with both, is a usage error naming the flags', async () => {
  const none = await run('server/cli.js', ['--check', '--state-dir', join(dir, 'plain')]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^spa: error: no capture given: use --interface IF .* or --udp-server$/m);
  const both = await run('server/cli.js', [
    '--check',
    '--udp-server',
    '--interface',
    'eth0',
    '--state-dir',
    join(dir, 'plain'),
  ]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--interface and --udp-server cannot be used together/);
});

test('spad status without a running daemon says so and exits 1', async () => {
  const r = await run('server/cli.js', ['status', '--state-dir', join(dir, 'plain')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^spa: error: no running spad on .*spad\.sock/m);
});
