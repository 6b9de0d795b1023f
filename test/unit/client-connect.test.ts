/**
 * `spa connect HOST PORT` (ssh ProxyCommand): the knock asks for tcp/PORT, the relay copies both
 * ways through a local TCP echo server, a port that never opens ends in a bounded wait, a second
 * knock and a clear error, and a port that opens late is found.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { relay, waitForPort } from '../../client/connect.js';
import { formatAccessList } from '../../protocol/access.js';
import { isSpaError } from '../../protocol/errors.js';
import {
  type Home,
  type Keys,
  type Listener,
  keys as loadKeys,
  makeHome,
  openKnock,
  spa,
  udpListener,
} from './client-fixtures.js';

function sink(): Writable & { text(): string } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  return Object.assign(w, { text: () => Buffer.concat(chunks).toString() });
}

async function listen(
  handler: (s: Socket) => void,
): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    s.on('error', () => undefined);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    handler(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0, sockets };
}

async function closeServer(s: { server: Server; sockets: Set<Socket> }): Promise<void> {
  for (const x of s.sockets) x.destroy();
  await new Promise((r) => s.server.close(r));
}

/** A TCP port nobody listens on (bound then released). */
async function closedPort(): Promise<number> {
  const s = await listen(() => undefined);
  await closeServer(s);
  return s.port;
}

let K: Keys;
let H: Home;
let L: Listener;
let echo: Awaited<ReturnType<typeof listen>>;

before(async () => {
  K = await loadKeys();
  H = await makeHome([{ key: K.alice, username: 'alice' }], [{ key: K.server, name: 'gw' }]);
  L = await udpListener();
  echo = await listen((s) => s.pipe(s));
});
after(async () => {
  L.close();
  await closeServer(echo);
  await H.cleanup();
});

describe('spa connect', () => {
  test('knocks for tcp/PORT, then relays stdin to the server and its answer to stdout', async () => {
    const stdin = new PassThrough();
    const stdout = sink();
    stdin.end('SSH-2.0-test\r\nhello through the knock\n');
    const r = await spa(['connect', '--home', H.home, '-p', String(L.port), '127.0.0.1', String(echo.port)], {
      stdin,
      stdout,
    });
    assert.equal(r.code, 0, r.err);
    assert.equal(stdout.text(), 'SSH-2.0-test\r\nhello through the knock\n');
    assert.equal(r.out, '', 'messages never go to the relayed stdout');
    const opened = await openKnock((await L.next()).msg, K.identity, [K.alice]);
    assert.equal(formatAccessList(opened.payload.access), `tcp/${echo.port}`);
  });

  test('-A given to connect is what the knock asks for', async () => {
    const stdin = new PassThrough();
    stdin.end('x');
    const r = await spa(
      [
        'connect',
        '--home',
        H.home,
        '-A',
        'tcp/22,tcp/443',
        '-p',
        String(L.port),
        '127.0.0.1',
        String(echo.port),
      ],
      { stdin, stdout: sink() },
    );
    assert.equal(r.code, 0, r.err);
    const opened = await openKnock((await L.next()).msg, K.identity, [K.alice]);
    assert.equal(formatAccessList(opened.payload.access), 'tcp/22,tcp/443');
  });

  test('options before "connect" apply too (spa -n NAME connect HOST PORT)', async () => {
    const stdin = new PassThrough();
    stdin.end('y');
    const stdout = sink();
    const r = await spa(['--home', H.home, '-p', String(L.port), 'connect', '127.0.0.1', String(echo.port)], {
      stdin,
      stdout,
    });
    assert.equal(r.code, 0, r.err);
    assert.equal(stdout.text(), 'y');
    await L.next();
  });

  test('a port that never opens ends after --connect-timeout with exit 1, a second knock and a hint', async () => {
    const port = await closedPort();
    const before = L.received.length;
    const t0 = Date.now();
    const stdin = new PassThrough();
    const r = await spa(
      [
        'connect',
        '--home',
        H.home,
        '-p',
        String(L.port),
        '--connect-timeout',
        '1',
        '127.0.0.1',
        String(port),
      ],
      { stdin, stdout: sink() },
    );
    const took = Date.now() - t0;
    stdin.destroy();
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      new RegExp(
        `^spa: error: 127\\.0\\.0\\.1:${port} did not accept a connection within 1 s after the knock`,
        'm',
      ),
    );
    assert.match(r.err, /^spa: hint: check that the server accepted the knock/m);
    assert.ok(took < 4000, `bounded wait, took ${took} ms`);
    await L.settled();
    const knocks = L.received.slice(before);
    assert.equal(knocks.length, 2, 'one knock, then one more halfway');
    const a = await openKnock(knocks[0]?.msg ?? new Uint8Array(), K.identity, [K.alice]);
    const b = await openKnock(knocks[1]?.msg ?? new Uint8Array(), K.identity, [K.alice]);
    assert.notDeepEqual(a.payload.nonce, b.payload.nonce, 'the second knock is a fresh packet');
  });

  test('a bad PORT is a usage error (exit 2)', async () => {
    const r = await spa(['connect', '--home', H.home, '127.0.0.1', '0']);
    assert.equal(r.code, 2);
    assert.match(r.err, /^spa: error: PORT: expected a whole number 1\.\.65535/m);
  });

  test('--test builds the knock and neither sends nor connects', async () => {
    const before = L.received.length;
    const r = await spa(['connect', '--home', H.home, '-p', String(L.port), '--test', '127.0.0.1', '2222']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /"access":"tcp\/2222"/);
    await L.settled();
    assert.equal(L.received.length, before);
  });
});

describe('waitForPort and relay', () => {
  test('a port that opens after a while is found, with a re-knock on the way', async () => {
    // reserve a port, free it, and listen on it 700 ms later
    const port = await closedPort();
    let late: Awaited<ReturnType<typeof listen>> | null = null;
    const timer = setTimeout(() => {
      const server = createServer((s) => {
        s.on('error', () => undefined);
        s.end('late\n');
      });
      server.listen(port, '127.0.0.1');
      late = { server, port, sockets: new Set() };
    }, 700);
    let reknocks = 0;
    try {
      const sock = await waitForPort({
        address: '127.0.0.1',
        port,
        timeoutMs: 1000,
        reknock: async () => {
          reknocks++;
        },
      });
      sock.destroy();
      assert.equal(reknocks, 1);
    } finally {
      clearTimeout(timer);
      if (late) await closeServer(late);
    }
  });

  test('the wait is bounded in attempts as well as in time', async () => {
    const port = await closedPort();
    const lines: string[] = [];
    await assert.rejects(
      waitForPort({
        address: '127.0.0.1',
        port,
        timeoutMs: 5000,
        maxAttempts: 3,
        retryDelayMs: 10,
        log: (l) => lines.push(l),
      }),
      (e: unknown) => isSpaError(e) && e.code === 'IO',
    );
    assert.equal(lines.filter((l) => /^attempt \d+: ECONNREFUSED$/.test(l)).length, 3);
  });

  test('when the server closes first, the relay ends and what it sent is delivered', async () => {
    const srv = await listen((s) => s.end('bye\n'));
    try {
      const sock = await waitForPort({ address: '127.0.0.1', port: srv.port, timeoutMs: 2000 });
      const input = new PassThrough(); // never ends: the server side decides
      const out = sink();
      await relay(sock, input, out);
      assert.equal(out.text(), 'bye\n');
      assert.ok(input.destroyed, 'input is released so the process can exit');
    } finally {
      await closeServer(srv);
    }
  });

  test('a reset connection rejects with an IO error', async () => {
    const srv = await listen((s) => {
      s.on('data', () => s.resetAndDestroy());
    });
    try {
      const sock = await waitForPort({ address: '127.0.0.1', port: srv.port, timeoutMs: 2000 });
      const input = new PassThrough();
      input.write('trigger');
      await assert.rejects(
        relay(sock, input, sink()),
        (e: unknown) => isSpaError(e) && e.code === 'IO' && /ECONNRESET/.test(e.message),
      );
    } finally {
      await closeServer(srv);
    }
  });
});
