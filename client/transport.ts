/**
 * Getting one datagram to the server: resolve HOST (IPv4 or IPv6, or forced with -4/-6), open a
 * UDP socket on an ephemeral port connected to HOST:port, and send. `connect()` on a UDP socket
 * sends nothing; it fixes the route, which is also how the client learns the local address the
 * kernel would use towards the server (the payload's default source, SPEC.md §6).
 */
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { type Address, parseAddress, unmapV4 } from '../protocol/address.js';
import { ConfigError } from '../protocol/errors.js';

export interface Destination {
  /** As the user gave it. */
  readonly host: string;
  /** The address it resolved to, text (no zone). */
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
}

function ioError(message: string, cause: unknown, hint?: string): ConfigError {
  return new ConfigError('IO', message, { cause, ...(hint ? { hint } : {}) });
}

/** HOST to one address: an IP literal as it is, a name through the system resolver. */
export async function resolveDestination(host: string, port: number, family?: 4 | 6): Promise<Destination> {
  const literal = isIP(host);
  if (literal !== 0) {
    if (family !== undefined && family !== literal) {
      throw new ConfigError('USAGE', `-${family}: ${host} is an IPv${literal} address`, { field: 'host' });
    }
    return { host, address: host, family: literal as 4 | 6, port };
  }
  try {
    const r = await lookup(host, { family: family ?? 0, verbatim: true });
    return { host, address: r.address, family: r.family === 6 ? 6 : 4, port };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    const what = family ? `an IPv${family} address for '${host}'` : `'${host}'`;
    throw ioError(
      `cannot resolve ${what} (${code})`,
      e,
      family ? 'check the name, or drop -4/-6' : 'check the name, your resolver, or give the server address',
    );
  }
}

function describeNetError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'EHOSTUNREACH':
      return 'no route to host';
    case 'EADDRNOTAVAIL':
      return 'no local address can reach it';
    case 'EAFNOSUPPORT':
      return 'this address family is not supported here';
    default:
      return code ?? (e as Error).message ?? String(e);
  }
}

/** A UDP socket connected to the destination. */
export class KnockSocket {
  readonly destination: Destination;
  readonly #socket: Socket;
  #closed = false;
  /** Datagrams not yet taken by receive(), bounded; a connected socket gets them from the server only. */
  readonly #inbox: Uint8Array[] = [];
  #waiter: ((m: Uint8Array | null) => void) | null = null;

  private constructor(socket: Socket, dest: Destination) {
    this.#socket = socket;
    this.destination = dest;
    // late ICMP errors (port unreachable after a send) are reported on the next send, never thrown
    socket.on('error', () => undefined);
    socket.on('message', (msg: Buffer) => {
      const m = new Uint8Array(msg);
      const w = this.#waiter;
      if (w) {
        this.#waiter = null;
        w(m);
      } else if (this.#inbox.length < 16) this.#inbox.push(m);
    });
  }

  /**
   * The next datagram from the server (the socket is connected: the kernel delivers only those
   * from its address and port), or null after `timeoutMs`.
   */
  receive(timeoutMs: number): Promise<Uint8Array | null> {
    const queued = this.#inbox.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#closed || timeoutMs <= 0) return Promise.resolve(null);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#waiter = null;
        resolve(null);
      }, timeoutMs);
      this.#waiter = (m) => {
        clearTimeout(t);
        resolve(m);
      };
    });
  }

  static async connect(dest: Destination): Promise<KnockSocket> {
    const socket = createSocket({ type: dest.family === 6 ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (e: Error) => reject(e);
        socket.once('error', onError);
        // node reports a failed connect() through the callback's argument, not as an 'error' event
        socket.connect(dest.port, dest.address, (err?: Error) => {
          socket.off('error', onError);
          if (err) reject(err);
          else resolve();
        });
      });
    } catch (e) {
      socket.close();
      throw ioError(
        `cannot reach ${dest.host}${dest.host === dest.address ? '' : ` (${dest.address})`}: ${describeNetError(e)}`,
        e,
        `check the route to the server: ip route get ${dest.address}`,
      );
    }
    return new KnockSocket(socket, dest);
  }

  /** The local address the kernel chose for this route, IPv4-mapped addresses folded. */
  localAddress(): Address {
    const text = this.#socket.address().address.replace(/%.*$/, '');
    return unmapV4(parseAddress(text, 'local address'));
  }

  /** The local port (ephemeral). */
  localPort(): number {
    return this.#socket.address().port;
  }

  /** Sends one datagram. A pending ICMP error from an earlier send is cleared and the send retried once. */
  async send(packet: Uint8Array): Promise<void> {
    const once = () =>
      new Promise<void>((resolve, reject) => {
        this.#socket.send(packet, (err) => (err ? reject(err) : resolve()));
      });
    try {
      await once();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ECONNREFUSED') {
        throw ioError(`cannot send to ${this.destination.address}: ${describeNetError(e)}`, e);
      }
      try {
        await once();
      } catch (e2) {
        throw ioError(`cannot send to ${this.destination.address}: ${describeNetError(e2)}`, e2);
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const w = this.#waiter;
    this.#waiter = null;
    w?.(null);
    this.#socket.close();
  }
}

/** `host:port` with brackets around IPv6 addresses. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
