/**
 * The monitor's sockets on the SPA port in pcap mode, IPv4 and IPv6. They send the signed
 * replies (SPEC.md §12), so that a reply comes from the port the client knocked (its socket is
 * connected there and takes nothing else). They also receive the returning lane: our own
 * firewall rule drops the SPA port for every source (nftables.ts/iptables.ts `stealthPort`)
 * except, with nftables, sources granted access in the last 15 minutes, a few datagrams a second
 * each (nft-ruleset.ts). Those reach `onDatagram` unread, at most PACKET_MAX_BYTES long, for the
 * verifier; libpcap sees them too, and the verifier handles one copy (lane-dedupe.ts).
 */
import { createSocket, type Socket } from 'node:dgram';
import { PACKET_MAX_BYTES } from '../protocol/limits.js';
import { canonicalSocketAddress } from '../protocol/address.js';

/** A datagram of the returning lane, as it arrived. */
export type LaneDatagram = (bytes: Buffer, source: string, port: number, receivedAt: bigint) => void;

export interface ReplySockets {
  send(bytes: Uint8Array, address: string, port: number): Promise<void>;
  close(): void;
}

function bind(
  type: 'udp4' | 'udp6',
  port: number,
  onDatagram: LaneDatagram | undefined,
): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = createSocket({ type, ipv6Only: type === 'udp6' });
    const fail = (): void => {
      s.close();
      resolve(null);
    };
    s.once('error', fail);
    s.bind({ port, address: type === 'udp4' ? '0.0.0.0' : '::' }, () => {
      s.off('error', fail);
      s.on('error', () => undefined);
      s.on('message', (msg, rinfo) => {
        const receivedAt = process.hrtime.bigint();
        if (!onDatagram || msg.length === 0 || msg.length > PACKET_MAX_BYTES) return;
        const source = canonicalSocketAddress(rinfo.address);
        if (source !== null) onDatagram(msg, source, rinfo.port, receivedAt);
      });
      resolve(s);
    });
  });
}

/** Binds both families; a family that cannot be bound (no IPv6 here) just sends nothing. */
export async function bindReplySockets(port: number, onDatagram?: LaneDatagram): Promise<ReplySockets> {
  const [v4, v6] = await Promise.all([bind('udp4', port, onDatagram), bind('udp6', port, onDatagram)]);
  return {
    send(bytes, address, to) {
      const s = address.includes(':') ? v6 : v4;
      if (!s) return Promise.resolve();
      return new Promise((resolve) => s.send(bytes, to, address, () => resolve()));
    },
    close() {
      v4?.close();
      v6?.close();
    },
  };
}
