/**
 * Control socket: a unix socket in the state dir, mode 0600 (root only), one JSON request line
 * → one JSON response line. Commands: status, reload, fw-list, fw-flush. This is the only way
 * to talk to the running daemon; nothing on the network ever answers.
 *
 * The socket file is created under a umask of 077, so it is never connectable by group or
 * others, not even between bind() and the chmod that follows (the umask is process-wide, so it
 * is set and restored synchronously around listen(), where no other code can run). Exactly one
 * request per connection: once the first line is in, further data is ignored, so one connection
 * cannot run a command twice.
 */
import { chmodSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { ConfigError } from '../protocol/errors.js';

export const CONTROL_COMMANDS = ['status', 'reload', 'fw-list', 'fw-flush'] as const;
export type ControlCommand = (typeof CONTROL_COMMANDS)[number];

export type ControlHandler = (cmd: ControlCommand) => Promise<unknown>;

export async function listenControl(path: string, handler: ControlHandler): Promise<Server> {
  try {
    unlinkSync(path); // a stale socket from a crash; a live daemon is detected by the caller first
  } catch {
    /* none */
  }
  const server = createServer((sock) => {
    let buf = '';
    let taken = false;
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      if (taken) return; // one request per connection; the rest is ignored
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl > 4096 || (nl === -1 && buf.length > 4096)) return sock.destroy();
      if (nl === -1) return;
      taken = true;
      const line = buf.slice(0, nl);
      buf = '';
      let cmd: unknown;
      try {
        cmd = (JSON.parse(line) as { cmd?: unknown }).cmd;
      } catch {
        cmd = undefined;
      }
      if (!CONTROL_COMMANDS.includes(cmd as ControlCommand)) {
        sock.end(`${JSON.stringify({ ok: false, error: 'unknown command' })}\n`);
        return;
      }
      handler(cmd as ControlCommand).then(
        (result) => sock.end(`${JSON.stringify({ ok: true, result })}\n`),
        (err: Error) => sock.end(`${JSON.stringify({ ok: false, error: err.message })}\n`),
      );
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // bind() creates the file synchronously inside listen(): under this umask it is 0700 from
    // its first moment, then 0600 below
    const umask = process.umask(0o077);
    try {
      server.listen(path, () => resolve());
    } finally {
      process.umask(umask);
    }
  });
  chmodSync(path, 0o600);
  return server;
}

/** Sends one command to the daemon and returns its result; ConfigError IO when no daemon runs. */
export function callControl(path: string, cmd: ControlCommand, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ConfigError('IO', `spad did not answer on ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify({ cmd })}\n`));
    sock.on('data', (c: string) => {
      buf += c;
    });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        const r = JSON.parse(buf) as { ok: boolean; result?: unknown; error?: string };
        if (r.ok) resolve(r.result);
        else reject(new ConfigError('IO', `spad: ${r.error ?? 'failed'}`));
      } catch {
        reject(new ConfigError('IO', 'spad: unreadable answer on the control socket'));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new ConfigError('IO', `no running spad on ${path} (${err.code ?? err.message})`, {
          hint: 'start it with spad --interface IF (or --udp-server), or pass the same --state-dir',
        }),
      );
    });
  });
}
