import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseFraming } from '../../protocol/framing.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = (bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, bin), ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });

const dir = mkdtempSync(join(tmpdir(), 'spa-save-'));
after(() => rmSync(dir, { recursive: true, force: true }));
before(async () => {
  assert.equal((await run('keyring/cli.js', ['init', '--state-dir', join(dir, 's')])).code, 0);
  assert.equal((await run('keyring/cli.js', ['gen', '--user', 'alice', '--home', join(dir, 'h')])).code, 0);
  assert.equal(
    (await run('keyring/cli.js', ['import', join(dir, 's', 'server.asc'), '--home', join(dir, 'h')])).code,
    0,
  );
});

test('--save-packet writes the exact sealed knock (mode 0600) that --test reports', async () => {
  const file = join(dir, 'knock.bin');
  const r = await run('client/cli.js', [
    '-A',
    'tcp/22',
    '--home',
    join(dir, 'h'),
    '--test',
    '-B',
    file,
    '198.51.100.1',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const bytes = readFileSync(file);
  assert.equal(r.stdout.trim().split('\n').at(-1), `packet bytes: ${bytes.length}`);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(parseFraming(bytes).recipients.length, 1);
});

test('--save-packet refuses to overwrite an existing file', async () => {
  const file = join(dir, 'twice.bin');
  const args = ['-A', 'tcp/22', '--home', join(dir, 'h'), '--test', '-B', file, '198.51.100.1'];
  assert.equal((await run('client/cli.js', args)).code, 0);
  const r = await run('client/cli.js', args);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^spa: error: --save-packet: cannot create .*EEXIST/m);
});
