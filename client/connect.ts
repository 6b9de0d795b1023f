/**
 * `spa connect HOST PORT`, for `ssh -o ProxyCommand='spa connect -n NAME %h %p'`: knock, wait
 * until HOST:PORT accepts a TCP connection, then copy stdin to the connection and the connection
 * to stdout until the server closes it.
 *
 * Waiting is bounded in time (--connect-timeout, default 5 s) and in attempts. A SYN to a port
 * the firewall still drops gets no answer, so each attempt has its own short timeout, doubling
 * from 250 ms up to 2 s (a slow path still gets a full round trip); a refused attempt (RST, or an
 * ICMP reject) is retried after a pause. Halfway through, the client knocks once more (a fresh
 * packet: new nonce and timestamp), in case the first datagram was lost.
 *
 * stdout carries the relayed bytes only; every message goes to stderr.
 */
import { type Socket, connect as tcpConnect } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { ConfigError } from '../protocol/errors.js';
import { hostPort } from './transport.js';

export interface WaitOptions {
  readonly address: string;
  readonly port: number;
  readonly timeoutMs: number;
  /** Called once, halfway through the wait, if the port has not answered yet. */
  readonly reknock?: () => Promise<void>;
  readonly log?: (line: string) => void;
  /** Pause before the first attempt, giving the server time to open (default 25 ms). */
  readonly firstDelayMs?: number;
  /** Pause after a refused attempt (default 400 ms). */
  readonly retryDelayMs?: number;
  /** Hard cap on attempts whatever the timeout (default 30). */
  readonly maxAttempts?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

function attempt(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = tcpConnect({ host: address, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(Object.assign(new Error('no answer'), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    const onError = (e: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.off('error', onError);
      // until relay() takes over, an error just closes the socket (relay then sees 'close')
      sock.on('error', () => undefined);
      resolve(sock);
    });
    sock.once('error', onError);
  });
}

/** Connects to address:port, retrying within the bounds; throws IO when the port never answers. */
export async function waitForPort(opts: WaitOptions): Promise<Socket> {
  const start = Date.now();
  const deadline = start + opts.timeoutMs;
  const maxAttempts = opts.maxAttempts ?? 30;
  let reknocked = opts.reknock === undefined;
  let lastError = 'no answer';
  let perAttempt = 250;
  await sleep(Math.min(opts.firstDelayMs ?? 25, opts.timeoutMs));
  for (let i = 0; i < maxAttempts; i++) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      const sock = await attempt(opts.address, opts.port, Math.min(perAttempt, left));
      opts.log?.(
        `connected to ${hostPort(opts.address, opts.port)} after ${Date.now() - start} ms (attempt ${i + 1})`,
      );
      return sock;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      lastError = code === 'ETIMEDOUT' ? 'no answer' : code;
      opts.log?.(`attempt ${i + 1}: ${lastError}`);
      if (code === 'ETIMEDOUT') perAttempt = Math.min(perAttempt * 2, 2000);
      else await sleep(Math.min(opts.retryDelayMs ?? 400, deadline - Date.now()));
    }
    if (!reknocked && Date.now() - start >= opts.timeoutMs / 2) {
      reknocked = true;
      opts.log?.('knocking again');
      await opts.reknock?.();
    }
  }
  throw new ConfigError(
    'IO',
    `${hostPort(opts.address, opts.port)} did not accept a connection within ${Math.round(opts.timeoutMs / 1000)} s after the knock (${lastError})`,
    {
      hint:
        'check that the server accepted the knock (spad status, its audit log); behind NAT use -R URL or -s;\n' +
        'a slow server may need a longer --connect-timeout',
    },
  );
}

/**
 * Copies `input` to the socket and the socket to `output` until the server closes the connection.
 * End of input half-closes the connection (the server may still answer). Resolves when done;
 * rejects with an IO error if the connection fails.
 */
export function relay(sock: Socket, input: Readable, output: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      input.unpipe(sock);
      sock.unpipe(output);
      input.destroy();
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    sock.on('data', (chunk: Buffer) => {
      if (!output.write(chunk)) {
        sock.pause();
        output.once('drain', () => sock.resume());
      }
    });
    sock.on('end', () => finish());
    sock.on('close', () => finish());
    sock.on('error', (e: NodeJS.ErrnoException) =>
      finish(new ConfigError('IO', `connection to the server failed: ${e.code ?? e.message}`, { cause: e })),
    );
    // the other end of stdout went away (ssh exited): nothing more to do
    output.on('error', () => finish());
    input.on('error', () => sock.end());
    input.pipe(sock, { end: true });
  });
}
