/**
 * This host's own unicast addresses, for the pcap capture's "is this datagram for us" check.
 * libpcap runs the device in promiscuous mode, so on a hub, a flooding bridge, a mirror port or
 * a router, frames for other hosts reach us too; only a datagram whose IP destination is one of
 * our interface addresses may go on to the pipeline (broadcast and multicast are not: no
 * interface has them as its address).
 *
 * The list comes from os.networkInterfaces() (the kernel's addresses in this network namespace)
 * in canonical text (protocol/address.ts), read again when it is older than REFRESH_MS, and on
 * a miss at most once per MISS_REFRESH_MS, so an address added while spad runs is accepted from
 * its first knock, while a flood of frames for other hosts costs at most one read per second.
 * Addresses served only through local routes (AnyIP, `ip route add local ...`) are not listed
 * by the kernel as interface addresses and are refused.
 */
import { networkInterfaces } from 'node:os';
import { formatAddress, tryParseAddress } from '../../protocol/address.js';

export const REFRESH_MS = 5000;
export const MISS_REFRESH_MS = 1000;

/** Interface addresses as text, in any spelling os.networkInterfaces() uses. */
export type AddressSource = () => Iterable<string>;

export const systemAddresses: AddressSource = () => {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) out.push(a.address);
  }
  return out;
};

export class HostAddresses {
  #set: ReadonlySet<string> = new Set();
  #readAt = Number.NEGATIVE_INFINITY;
  readonly #source: AddressSource;
  readonly #now: () => number;

  constructor(source: AddressSource = systemAddresses, now: () => number = Date.now) {
    this.#source = source;
    this.#now = now;
  }

  /** `address` in canonical form (as decode.ts writes destinations). */
  has(address: string): boolean {
    const now = this.#now();
    if (now - this.#readAt >= REFRESH_MS) this.#read(now);
    if (this.#set.has(address)) return true;
    if (now - this.#readAt < MISS_REFRESH_MS) return false;
    this.#read(now);
    return this.#set.has(address);
  }

  #read(now: number): void {
    this.#readAt = now;
    const next = new Set<string>();
    try {
      for (const text of this.#source()) {
        const a = tryParseAddress(text.replace(/%.*$/, ''));
        if (a) next.add(formatAddress(a));
      }
    } catch {
      return; // keep the last good list
    }
    this.#set = next;
  }
}
