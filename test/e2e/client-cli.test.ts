/**
 * The real `spa` binary (`node dist/client/cli.js`) as a separate process, started from an
 * unrelated working directory: a knock on loopback that open() accepts, the documented exit codes,
 * `spa connect` relaying through pipes, and the same as a real ssh ProxyCommand to a real sshd
 * (when sshd is installed and we are root).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type Home,
  type Keys,
  keys as loadKeys,
  type Listener,
  makeHome,
  openKnock,
  parseTestOutput,
  udpListener,
} from '../unit/client-fixtures.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'client', 'cli.js');

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs spa from `/` with a time limit. */
function spaProc(args: readonly string[], input?: string, timeoutMs = 20_000): Promise<Proc> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: '/', timeout: timeoutMs },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

let K: Keys;
let H: Home;
let L: Listener;
let echo: Server;
let echoPort: number;
const echoSockets = new Set<Socket>();

before(async () => {
  K = await loadKeys();
  H = await makeHome([{ key: K.alice, username: 'alice' }], [{ key: K.server, name: 'gw' }]);
  L = await udpListener();
  echo = createServer((s) => {
    echoSockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => echoSockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  const a = echo.address();
  echoPort = typeof a === 'object' && a ? a.port : 0;
});
after(async () => {
  L.close();
  for (const s of echoSockets) s.destroy();
  await new Promise((r) => echo.close(r));
  await H.cleanup();
});

describe('the spa binary', () => {
  test('started from another directory, it knocks once and exits 0; the server accepts the knock', async () => {
    const r = await spaProc(['--home', H.home, '-A', 'tcp/22', '-p', String(L.port), '127.0.0.1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    const opened = await openKnock((await L.next()).msg, K.identity, [K.alice]);
    assert.equal(opened.payload.username, 'alice');
  });

  test('--test output is the payload line and the size line', async () => {
    const r = await spaProc(['--home', H.home, '-A', 'tcp/22', '--test', '127.0.0.1']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(parseTestOutput(r.stdout).payload.server, K.server.fingerprint);
  });

  const codes: [string, string[], number, RegExp][] = [
    ['a usage error', ['-A', 'tcp/x', '127.0.0.1'], 2, /^spa: error: -A\/--access: /],
    [
      'a key error',
      ['-A', 'tcp/22', '--gpg-sign', 'nobody-here', '127.0.0.1'],
      3,
      /^spa: error: no own key matches/,
    ],
    ['a runtime error', ['-A', 'tcp/22', 'no-such-host.invalid'], 1, /^spa: error: cannot resolve/],
  ];
  for (const [what, args, code, re] of codes) {
    test(`${what} exits ${code} with one error line on stderr and nothing on stdout`, async () => {
      const r = await spaProc(['--home', H.home, ...args]);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('spa: error:')).length, 1);
    });
  }

  test('spa connect relays stdin to the port and the port to stdout, then exits 0', async () => {
    const r = await spaProc(
      ['connect', '--home', H.home, '-p', String(L.port), '127.0.0.1', String(echoPort)],
      'ping over the relay\n',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ping over the relay\n');
    assert.equal(r.stderr, '');
    await L.next();
  });

  test('spa connect to a port that never opens exits 1 within its bound, stdout untouched', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const a = closed.address();
    const port = typeof a === 'object' && a ? a.port : 0;
    await new Promise((r) => closed.close(r));
    const t0 = Date.now();
    const r = await spaProc([
      'connect',
      '--home',
      H.home,
      '-p',
      String(L.port),
      '--connect-timeout',
      '2',
      '127.0.0.1',
      String(port),
    ]);
    assert.equal(r.code, 1);
    assert.ok(Date.now() - t0 < 8000);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /did not accept a connection within 2 s/);
  });
});

function sshAvailable(): string | false {
  if (process.getuid?.() !== 0) return 'needs root to run a test sshd';
  for (const bin of ['/usr/sbin/sshd', 'ssh', 'ssh-keygen']) {
    if (spawnSync(bin, ['-V'], { stdio: 'ignore' }).error) return `${bin} is not installed`;
  }
  return false;
}

describe('spa connect as an ssh ProxyCommand', { skip: sshAvailable() }, () => {
  let sshd: ChildProcess;
  let port: number;
  let dir: string;

  before(async () => {
    dir = H.root;
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'user_key')]);
    spawnSync('cp', [join(dir, 'user_key.pub'), join(dir, 'authorized_keys')]);
    spawnSync('mkdir', ['-p', '/run/sshd']);
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const a = probe.address();
    port = typeof a === 'object' && a ? a.port : 0;
    await new Promise((r) => probe.close(r));
    await writeFile(
      join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_key')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PidFile none',
        'UsePAM no',
        'StrictModes no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        '',
      ].join('\n'),
    );
    sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: 'ignore' });
    // wait until it listens
    const deadline = Date.now() + 5000;
    for (;;) {
      const ok = await new Promise<boolean>((r) => {
        const s = createServer();
        s.once('error', () => r(true));
        s.listen(port, '127.0.0.1', () => s.close(() => r(false)));
      });
      if (ok) break;
      if (Date.now() > deadline) throw new Error('sshd did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  after(() => {
    sshd?.kill('SIGTERM');
  });

  test("ssh -o ProxyCommand='spa connect ... %h %p' logs in through the knock and runs a command", async () => {
    const proxy = `${process.execPath} ${CLI} connect --home ${H.home} -p ${L.port} %h %p`;
    const before = L.received.length;
    const r = await new Promise<Proc>((resolve) => {
      execFile(
        'ssh',
        [
          '-F',
          '/dev/null',
          '-o',
          `ProxyCommand=${proxy}`,
          '-o',
          'BatchMode=yes',
          '-o',
          'StrictHostKeyChecking=no',
          '-o',
          'UserKnownHostsFile=/dev/null',
          '-o',
          'LogLevel=ERROR',
          '-i',
          join(dir, 'user_key'),
          '-p',
          String(port),
          'root@127.0.0.1',
          'echo through-spa-connect',
        ],
        { timeout: 20_000, cwd: '/' },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      );
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'through-spa-connect\n');
    const knock = L.received[before];
    assert.ok(knock, 'the ProxyCommand knocked');
    const opened = await openKnock(knock.msg, K.identity, [K.alice]);
    assert.equal(opened.payload.access[0]?.port, port, 'the knock asked for the ssh port');
  });
});
