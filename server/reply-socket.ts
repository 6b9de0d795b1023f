/**
 * The monitor's send-only sockets for signed replies in pcap mode (SPEC.md §12): UDP, IPv4 and
 * IPv6, bound to the SPA port so that a reply comes from the port the client knocked (its socket
 * is connected there and takes nothing else). Nothing arrives on them: in pcap mode our own
 * firewall rule drops the SPA port for every source (nftables.ts/iptables.ts `stealthPort`), and
 * anything that does arrive is discarded unread.
 */
import { createSocket, type Socket } from 'node:dgram';

export interface ReplySockets {
  send(bytes: Uint8Array, address: string, port: number): Promise<void>;
  close(): void;
}

function bind(type: 'udp4' | 'udp6', port: number): Promise<Socket | null> {
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
      s.on('message', () => undefined);
      resolve(s);
    });
  });
}

/** Binds both families; a family that cannot be bound (no IPv6 here) just sends nothing. */
export async function bindReplySockets(port: number): Promise<ReplySockets> {
  const [v4, v6] = await Promise.all([bind('udp4', port), bind('udp6', port)]);
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
