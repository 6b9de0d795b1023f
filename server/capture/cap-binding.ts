/**
 * The one place that touches the `cap` 0.2.1 native binding (libpcap). Loaded lazily so the UDP
 * mode and the client never load native code.
 *
 * What `cap` does for us: pcap_create + snaplen 65535 + promiscuous + pcap_set_buffer_size +
 * read timeout 1000 ms + pcap_set_immediate_mode(1) (looked up by dlsym, found even without the
 * libpcap.so dev symlink on glibc) + non-blocking + BPF filter, then a libuv poll handle on the
 * capture fd that runs pcap_dispatch() one packet at a time and emits 'packet' synchronously
 * after copying the frame into the Buffer given to open(). No sleeping: delivery is as fast as
 * the event loop turns (scripts/bench-capture.ts).
 *
 * Hazards of `cap` 0.2.1 (node_modules is not ours to patch), and what we do:
 * - open() that throws leaves the native object half-initialised; calling close() on it, or the
 *   garbage collector destroying it, crashes the process (segfault). We never close a failed
 *   instance and keep it referenced for the life of the process.
 * - a poll error on the capture fd (a named device going down or away) trips an assert in its
 *   C++ and aborts the process. pcap.ts therefore runs the binding in a child process by default.
 * - it always sets promiscuous mode, and has no pcap_stats().
 */
import { createRequire } from 'node:module';
import { FWKNOP_MIN_CHARS, PACKET_MAX_BYTES, PACKET_MIN_BYTES } from '../../protocol/limits.js';

export interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): boolean;
  on(event: 'packet', listener: (nbytes: number, truncated: boolean) => void): unknown;
  removeAllListeners(event?: string): unknown;
}
interface CapModule {
  Cap: new () => CapHandle;
}

/** Largest frame `cap` asks libpcap for (its snaplen is fixed). */
export const CAP_SNAPLEN = 65535;
const MAX_FAILED_OPENS = 16;

/** Instances whose open() threw: kept alive so their destructor never runs (see above). */
const failedOpens: CapHandle[] = [];
let capModule: CapModule | undefined;

/**
 * The kernel filter. With `knocksOnly`, it also requires what every knock has (SPEC.md §3, §5):
 * a UDP payload of 64..1400 bytes starting with a PKESK packet header (0xC1 new format, or
 * 0x84-0x87 old format), so most of a random flood never leaves the kernel. libpcap's `udp[]`
 * does not index into IPv6, so IPv6 (UDP as the first next header, as the decoder expects) uses
 * `ip6[]` offsets: UDP header at 40, payload at 48. It also passes what may be an fwknop knock.
 */
export function bpfFilter(port: number, knocksOnly = false): string {
  const base = `udp dst port ${port}`;
  if (!knocksOnly) return base;
  const min = 8 + PACKET_MIN_BYTES;
  const max = 8 + PACKET_MAX_BYTES;
  const v4 = `(ip and udp[4:2] >= ${min} and udp[4:2] <= ${max} and (udp[8] == 0xc1 or udp[8] & 0xfc == 0x84))`;
  // fwknop GPG-mode knocks (SPEC.md §11, IPv4 only: fwknop has no IPv6): base64 text of 140..1400
  // characters, first character '+' (0x2b) .. 'z' (0x7a); the capture's prefilter then checks it
  const fwknop = `(ip and udp[4:2] >= ${8 + FWKNOP_MIN_CHARS} and udp[4:2] <= ${max} and udp[8] >= 0x2b and udp[8] <= 0x7a)`;
  const v6 = `(ip6 and ip6[6] == 17 and ip6[44:2] >= ${min} and ip6[44:2] <= ${max} and (ip6[48] == 0xc1 or ip6[48] & 0xfc == 0x84))`;
  return `${base} and (${v4} or ${fwknop} or ${v6})`;
}

export class CapOpenError extends Error {}

/**
 * Opens `device` with the SPA port filter; frames are copied into `frame`. Returns the handle
 * and cap's link-type name. Throws CapOpenError with libpcap's message.
 */
export function openCap(
  device: string,
  port: number,
  bufferBytes: number,
  frame: Buffer,
  knocksOnly = false,
): { cap: CapHandle; linkName: string } {
  if (failedOpens.length >= MAX_FAILED_OPENS) {
    throw new CapOpenError(`${failedOpens.length} failed opens in this process; not trying again`);
  }
  if (!capModule) {
    try {
      capModule = createRequire(import.meta.url)('cap') as CapModule;
    } catch (err) {
      throw new CapOpenError(`cannot load the libpcap binding (npm package cap): ${(err as Error).message}`);
    }
  }
  const cap = new capModule.Cap();
  try {
    return { cap, linkName: cap.open(device, bpfFilter(port, knocksOnly), bufferBytes, frame) };
  } catch (err) {
    failedOpens.push(cap);
    throw new CapOpenError(err instanceof Error ? err.message : String(err));
  }
}
