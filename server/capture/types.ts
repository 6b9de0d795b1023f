/**
 * Public types of the capture layer: what spad's pipeline receives for every UDP datagram that
 * arrives on the SPA port, whichever way it was seen (libpcap on a device, or a plain UDP socket).
 */

export interface Datagram {
  /** Sender address as protocol/address.ts formatAddress writes it: dotted quad, or RFC 5952 IPv6. */
  readonly source: string;
  readonly sourcePort: number;
  /**
   * Address the datagram was sent to. With pcap this is the IP header's destination. With the UDP
   * socket it is the socket's bound address (e.g. `::`): Node's dgram cannot report the
   * per-packet destination.
   */
  readonly destination: string;
  readonly destinationPort: number;
  /**
   * The UDP payload, a copy the consumer owns. Empty when `oversize` is true: the bytes of an
   * oversize datagram are never copied, so a flood of big packets cannot grow memory.
   */
  readonly payload: Buffer;
  /** UDP payload length on the wire (from the UDP header / socket), also for oversize datagrams. */
  readonly length: number;
  /** True when `length > maxPayload`: the pipeline drops it as PKT_TOO_LONG without looking. */
  readonly oversize: boolean;
  /** `process.hrtime.bigint()` when the capture layer first saw the datagram. */
  readonly receivedAt: bigint;
}

export interface CaptureStats {
  /** Datagrams passed to `onDatagram` (oversize ones included). */
  received: number;
  /** Of those, how many were oversize (payload withheld). */
  oversize: number;
  /** Frames the filter let through that did not decode to a usable UDP datagram (pcap only). */
  decodeErrors: number;
  /**
   * Frames lost on the way to us, when the mechanism can count them: with isolated pcap, frames
   * the capture process dropped because spad fell more than 1 MiB behind. Kernel ring drops are
   * not visible (`cap` 0.2.1 has no pcap_stats()); undefined until something was dropped.
   */
  dropped?: number;
  /** pcap with recipientKeyIds: junk shed in the capture process under a flood, by reason (cumulative). */
  prefiltered?: Record<string, number>;
}

export interface Capture {
  /** Opens the device or binds the socket. Rejects (ConfigError, code IO) when that fails. */
  start(): Promise<void>;
  /** Closes the device or socket. Safe to call when not started; start() may be called again. */
  stop(): Promise<void>;
  readonly stats: Readonly<CaptureStats>;
  /**
   * Stop and resume reading while the pipeline has a backlog (isolated pcap: spad withholds the
   * capture process's credit, and it holds frames in its own fair queue and sheds what spad could
   * not process, fairly; server/limits.ts CREDIT_WINDOW).
   * Absent where the mechanism cannot pause (the UDP socket: the pipeline's queue sheds instead).
   */
  pause?(): void;
  resume?(): void;
  /**
   * Sends one datagram from the SPA port (the UDP socket only: the signed reply of SPEC.md §12,
   * made and decided by the monitor). Best effort: never rejects.
   */
  send?(bytes: Uint8Array, address: string, port: number): Promise<void>;
}

export interface CaptureCallbacks {
  /** Called synchronously for every datagram; must not throw (exceptions go to onError). */
  onDatagram: (d: Datagram) => void;
  /** Runtime errors after start() resolved, and exceptions thrown by onDatagram. */
  onError?: (e: Error) => void;
}

export interface PcapCaptureOptions extends CaptureCallbacks {
  /** Interface name, or `any` for all interfaces (Linux cooked capture). */
  device: string;
  port: number;
  /** Largest UDP payload delivered with its bytes; larger ones are reported as oversize. */
  maxPayload: number;
  /** libpcap kernel ring size in bytes (default 32 MiB, see pcap.ts). */
  bufferBytes?: number;
  /**
   * The server's recipient key ids (16 hex digits). When given, the capture process sheds junk
   * beyond a small per-second allowance before it reaches spad, and queues what may be a knock
   * fairly by source while spad is busy (prefilter.ts).
   */
  recipientKeyIds?: readonly string[];
}

export interface UdpCaptureOptions extends CaptureCallbacks {
  /** Bind address; default `::` (dual-stack: IPv4 and IPv6). */
  host?: string;
  port: number;
  maxPayload: number;
}
