/**
 * A real redis-server for a test: no persistence (`--save '' --appendonly no`), in the
 * foreground, bound to loopback (or to an address inside a namespace the test made), on a free
 * port. `stop()` ends it and waits for its exit; `start()` starts it again on the same port (Redis
 * "coming back"). SIGINT/SIGTERM/SIGHUP end it too (scripts/cleanup.ts), so an interrupted run
 * leaves no redis-server behind. Needs /usr/bin/redis-server (scripts/setup.sh installs it).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { onInterrupt } from '../../scripts/cleanup.js';
import type { Host } from '../../scripts/netns.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

export function redisUnavailable(): string | null {
  return existsSync(REDIS_SERVER) ? null : `${REDIS_SERVER} missing (run scripts/setup.sh as root)`;
}

/** A TCP port free on loopback right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface TestRedis {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly running: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(
  opts: {
    bind?: string;
    port?: number;
    in?: Host;
    extraArgs?: readonly string[];
    /** TLS only (rediss://): the server's certificate, key and the CA of client certificates. */
    tls?: { cert: string; key: string; ca: string };
  } = {},
): Promise<TestRedis> {
  const bind = opts.bind ?? '127.0.0.1';
  const port = opts.port ?? (await freePort());
  const listen = opts.tls
    ? [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--tls-cert-file',
        opts.tls.cert,
        '--tls-key-file',
        opts.tls.key,
      ]
    : ['--port', String(port)];
  if (opts.tls) listen.push('--tls-ca-cert-file', opts.tls.ca, '--tls-auth-clients', 'no');
  const args = [
    ...listen,
    '--bind',
    bind,
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
    '--protected-mode',
    'no',
    ...(opts.extraArgs ?? []),
  ];
  let child: ChildProcess | null = null;
  let release: (() => Promise<void>) | null = null;
  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    if (!c) return;
    if (c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await gone;
    }
    await release?.();
    release = null;
  };
  const start = async (): Promise<void> => {
    if (child) return;
    const c = opts.in ? opts.in.spawn(REDIS_SERVER, args) : spawn(REDIS_SERVER, args);
    child = c;
    release = onInterrupt(async () => {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redis-server not ready in 5 s: ${out.slice(-500)}`)),
        5000,
      );
      const onData = (b: Buffer): void => {
        out += b.toString();
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          c.stdout?.off('data', onData);
          resolve();
        }
      };
      c.stdout?.on('data', onData);
      c.stderr?.on('data', (b: Buffer) => (out += b.toString()));
      c.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}): ${out.slice(-500)}`));
      });
    }).catch(async (err: unknown) => {
      await stop();
      throw err;
    });
    c.stdout?.resume();
    c.stderr?.resume();
  };
  await start();
  const hostInUrl = bind.includes(':') ? `[${bind}]` : bind;
  return {
    host: bind,
    port,
    url: `${opts.tls ? 'rediss' : 'redis'}://${hostInUrl}:${port}/0`,
    get running() {
      return child !== null;
    },
    start,
    stop,
  };
}
