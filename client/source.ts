/**
 * The address a knock asks the server to open for (SPEC.md §6):
 * - `-a IP`: as given;
 * - `-s`: "any", the server opens the address the datagram comes from (if the user's policy allows);
 * - `-R URL`: whatever an HTTPS endpoint says our address is: one GET, 5 s for all of it, a body
 *   of at most 1 KiB that must be exactly one unicast IPv4 or IPv6 address (surrounding whitespace
 *   allowed; not unspecified, multicast or broadcast), status 200, no redirects followed. Plain
 *   http:// is refused by settings.ts unless `--insecure-resolve` (then actions.ts warns): over
 *   http anyone on the path picks the address the knock opens;
 * - default: the local address the kernel uses towards the server (transport.ts), which is right
 *   unless a NAT sits between client and server (then use -R or -s).
 */
import type { IncomingMessage } from 'node:http';
import { type Address, formatAddress, tryParseAddress, unmapV4 } from '../protocol/address.js';
import { ConfigError } from '../protocol/errors.js';

export const RESOLVE_TIMEOUT_MS = 5000;
/** Longest response body read from a resolver URL. */
export const RESOLVE_MAX_BYTES = 1024;

export interface ResolveOptions {
  readonly timeoutMs?: number;
  readonly maxBytes?: number;
}

function fail(url: URL, message: string, cause?: unknown): ConfigError {
  return new ConfigError('IO', `-R ${url.origin}${url.pathname}: ${message}`, {
    ...(cause === undefined ? {} : { cause }),
    hint: 'the URL must answer 200 with just your address as text; or give it yourself with -a IP, or use -s',
  });
}

/** Asks `url` for our public address. */
export async function resolvePublicAddress(url: URL, opts: ResolveOptions = {}): Promise<Address> {
  const timeoutMs = opts.timeoutMs ?? RESOLVE_TIMEOUT_MS;
  const maxBytes = opts.maxBytes ?? RESOLVE_MAX_BYTES;
  const mod = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  const body = await new Promise<string>((resolve, reject) => {
    let settled = false;
    const done = (err: Error | null, text?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(text ?? '');
    };
    const req = mod.get(
      url,
      { headers: { accept: 'text/plain', 'user-agent': 'spa-client' }, agent: false },
      (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          res.resume();
          req.destroy();
          done(
            fail(
              url,
              `HTTP status ${res.statusCode ?? 'unknown'}${res.headers.location ? ' (redirects are not followed)' : ''}`,
            ),
          );
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            req.destroy();
            done(fail(url, `response longer than ${maxBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => done(null, Buffer.concat(chunks).toString('utf8')));
        res.on('error', (e) => done(fail(url, e.message, e)));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      done(fail(url, `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => done(fail(url, e.code ?? e.message, e)));
  });
  const text = body.trim();
  const addr = tryParseAddress(text);
  if (!addr) {
    throw fail(
      url,
      `the answer is not an IPv4 or IPv6 address ('${text.slice(0, 40).replace(/[^\x20-\x7e]/g, '?')}')`,
    );
  }
  const a = unmapV4(addr);
  if (!isUnicast(a)) {
    throw fail(url, `the answer '${formatAddress(a)}' is not a unicast address`);
  }
  return a;
}

/** Not unspecified, multicast, broadcast or IPv4 class E: an address a port can be opened for. */
function isUnicast(a: Address): boolean {
  const b = a.bytes;
  if (b.every((x) => x === 0)) return false;
  if (a.family === 4) return (b[0] ?? 0) < 224;
  return b[0] !== 0xff;
}
