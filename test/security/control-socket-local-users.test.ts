/**
 * Attacks on the control socket by other local users and by a client that says more than it
 * was asked:
 * - the socket was created with the process umask and chmod-ed to 0600 only after listen(), so
 *   under a permissive umask there was a moment when any local user could connect and send
 *   `fw-flush`;
 * - every chunk that arrived after the first newline ran the handler again with the first line,
 *   so one connection could run `fw-flush` (or `reload`) as often as it sent bytes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type ControlCommand, listenControl } from '../../server/control.js';

const dir = mkdtempSync(join(tmpdir(), 'spa-control-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a local user cannot connect between listen and chmod: the socket never has group or other permissions', async () => {
  const path = join(dir, 'race.sock');
  const modes: number[] = [];
  // What a local attacker racing the daemon would find: the socket's mode the instant it exists.
  const listen = Server.prototype.listen;
  Server.prototype.listen = function (this: Server, ...args: unknown[]) {
    const r = (listen as (...a: unknown[]) => Server).apply(this, args);
    try {
      modes.push(statSync(path).mode & 0o777);
    } catch {
      modes.push(-1);
    }
    return r;
  } as typeof listen;
  const oldMask = process.umask(0);
  let server: Server | undefined;
  try {
    server = await listenControl(path, async () => ({}));
  } finally {
    Server.prototype.listen = listen;
    process.umask(oldMask);
  }
  try {
    assert.equal(modes.length, 1);
    assert.equal((modes[0] ?? 0) & 0o077, 0, `mode right after listen: ${(modes[0] ?? 0).toString(8)}`);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(process.umask(oldMask), oldMask, 'the process umask is put back');
  } finally {
    await new Promise((r) => server?.close(r));
  }
});

test('extra data after the first request line does not run the handler again', async () => {
  const path = join(dir, 'one.sock');
  const calls: ControlCommand[] = [];
  let release: () => void = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  let called: () => void = () => {};
  const firstCall = new Promise<void>((r) => {
    called = r;
  });
  const server = await listenControl(path, async (cmd) => {
    calls.push(cmd);
    called();
    await held;
    return { flushed: true };
  });
  try {
    const sock = createConnection(path);
    let answer = '';
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => {
      answer += c;
    });
    const ended = new Promise<void>((r) => sock.on('end', () => r()));
    sock.write('{"cmd":"fw-flush"}\n');
    await firstCall;
    // separate chunks, each its own 'data' event on the server
    for (const more of ['{"cmd":"fw-flush"}\n', 'x', '\n', '{"cmd":"reload"}\n']) {
      sock.write(more);
      await new Promise((r) => setTimeout(r, 20));
    }
    release();
    await ended;
    sock.destroy();
    assert.deepEqual(calls, ['fw-flush']);
    assert.deepEqual(JSON.parse(answer), { ok: true, result: { flushed: true } });
  } finally {
    release();
    await new Promise((r) => server.close(r));
  }
});
