/**
 * Capture with a plain UDP socket (`spad --udp-server`): no libpcap, no root needed for a port
 * above 1023, but the port must be open in the firewall and the kernel answers probes of a
 * closed port, so it is not stealthy. Same Datagram contract as pcap.
 *
 * Default bind `::` with IPV6_V6ONLY off: one socket for IPv4 and IPv6; IPv4 senders arrive as
 * IPv4-mapped addresses and are reported as dotted quads. Addresses are written as
 * protocol/address.ts writes them (RFC 5952), the same text as pcap gives. Node cannot tell the
 * per-packet destination address (no IP_PKTINFO), so `destination` is the bound address.
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { canonicalSocketAddress } from '../../protocol/address.js';
import { ConfigError } from '../../protocol/errors.js';
import type { Capture, CaptureStats, UdpCaptureOptions } from './types.js';

export { canonicalSocketAddress };

const EMPTY = Buffer.alloc(0);

export function createUdpCapture(opts: UdpCaptureOptions): Capture {
  const { port, maxPayload, onDatagram, onError } = opts;
  const host = opts.host ?? '::';
  const family = isIP(host.split('%')[0] ?? '');
  if (family === 0) {
    throw new ConfigError('ADDRESS_INVALID', `bind address is not an IP address (length ${host.length})`, {
      field: 'host',
    });
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError('CONFIG_INVALID', `port must be an integer 1-65535, got ${port}`, {
      field: 'port',
    });
  }
  if (!Number.isInteger(maxPayload) || maxPayload < 1 || maxPayload > 65535) {
    throw new ConfigError('CONFIG_INVALID', 'maxPayload must be an integer 1-65535', { field: 'maxPayload' });
  }
  const stats: CaptureStats = { received: 0, oversize: 0, decodeErrors: 0 };
  let socket: dgram.Socket | undefined;
  let boundAddress = canonicalSocketAddress(host) ?? host;

  const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    const receivedAt = process.hrtime.bigint();
    const source = canonicalSocketAddress(rinfo.address);
    if (source === null) {
      stats.decodeErrors++;
      return;
    }
    const oversize = msg.length > maxPayload;
    stats.received++;
    if (oversize) stats.oversize++;
    try {
      onDatagram({
        source,
        sourcePort: rinfo.port,
        destination: boundAddress,
        destinationPort: port,
        // Node hands each message its own buffer: already a copy the consumer owns.
        payload: oversize ? EMPTY : msg,
        length: msg.length,
        oversize,
        receivedAt,
      });
    } catch (err) {
      onError?.(err instanceof Error ? err : new Error(String(err)));
    }
  };
  return {
    stats,
    start(): Promise<void> {
      if (socket) return Promise.resolve();
      // 4 MiB receive buffer (the kernel caps it at net.core.rmem_max; root may exceed that via
      // SO_RCVBUFFORCE, which node does not expose): the default ~208 KiB lost 9 of 300
      // back-to-back knocks while spad was busy verifying.
      const s = dgram.createSocket({
        type: family === 4 ? 'udp4' : 'udp6',
        ipv6Only: false,
        recvBufferSize: 4 * 1024 * 1024,
      });
      socket = s;
      return new Promise<void>((resolve, reject) => {
        const onBindError = (err: Error): void => {
          socket = undefined;
          s.close();
          reject(
            new ConfigError('IO', `udp: cannot bind ${host} port ${port}: ${err.message}`, { cause: err }),
          );
        };
        s.once('error', onBindError);
        s.bind({ address: host, port }, () => {
          s.off('error', onBindError);
          s.on('error', (err) => onError?.(err));
          s.on('message', onMessage);
          boundAddress = canonicalSocketAddress(s.address().address) ?? boundAddress;
          resolve();
        });
      });
    },
    send(bytes: Uint8Array, address: string, port: number): Promise<void> {
      const s = socket;
      if (!s) return Promise.resolve();
      // a dual-stack socket reaches IPv4 peers through their mapped address
      const to = family === 6 && !address.includes(':') ? `::ffff:${address}` : address;
      return new Promise<void>((resolve) => s.send(bytes, port, to, () => resolve()));
    },
    stop(): Promise<void> {
      const s = socket;
      if (!s) return Promise.resolve();
      socket = undefined;
      return new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}
