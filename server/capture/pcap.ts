/**
 * Capture by libpcap on one device or `any`: knocks are seen before netfilter, so the SPA port
 * stays dropped (nothing answers, not even ICMP): the stealth property.
 *
 * Two ways to hold the libpcap handle (cap-binding.ts explains the `cap` hazards behind this):
 * - isolated (default): a child process (pcap-child.ts) owns the handle and streams raw frames
 *   over a pipe. If it dies (`cap` aborts when a named device goes down), onError hears of it and
 *   a new child is started with backoff until the device is back (pcap-supervisor.ts). Cost: one
 *   pipe hop, measured by scripts/bench-capture.ts.
 * - in-process (`isolate: false`): the handle lives in spad; one hop less, but a device going
 *   down kills spad.
 * Either way frames are decoded here (decode.ts) with one set of counters, the BPF filter is
 * `udp dst port N`, and libpcap runs in immediate mode (no read timeout, no sleep). The device
 * is promiscuous, so a datagram is delivered only when its destination is one of this host's
 * own addresses (host-addresses.ts); others count as `not-for-host`.
 *
 * Oversize datagrams (UDP payload > maxPayload) are delivered with `oversize: true`, their
 * length, and an empty payload: the pipeline logs PKT_TOO_LONG; the bytes are never copied. The
 * capture buffer is maxPayload + HEADER_ROOM bytes, so memory per frame is bounded too.
 */
import { existsSync } from 'node:fs';
import { ConfigError } from '../../protocol/errors.js';
import { CAP_SNAPLEN, type CapHandle, openCap } from './cap-binding.js';
import { type DecodeFailure, decodeFrame, isSupportedLinkType, linkTypeFromCap } from './decode.js';
import { DEFAULT_BUFFER_BYTES } from '../limits.js';
import { captureChildArgs, HEADER_ROOM } from './child-args.js';
import { HostAddresses } from './host-addresses.js';
import { RecordReader } from './pcap-ipc.js';
import { supervisedCapture } from './pcap-supervisor.js';
import type { Capture, CaptureStats, Datagram, PcapCaptureOptions } from './types.js';

/** How long a piped capture process may take to report READY. */
const START_TIMEOUT_MS = 10_000;

export { CAPTURE_CHILD_SCRIPT, captureChildArgs, HEADER_ROOM } from './child-args.js';

export type PcapRejectReason = DecodeFailure | 'wrong-port' | 'cut-short';

export interface PcapCaptureStats extends CaptureStats {
  /** Decode failures by reason (their sum is `decodeErrors`). */
  readonly rejected: Partial<Record<PcapRejectReason, number>>;
  /** Link type at the last start (pcap_datalink() value, see decode.ts LINKTYPE). */
  linkType?: number;
  /** Capture processes started again after one ended (isolated mode). */
  restarts: number;
}

export interface PcapCapture extends Capture {
  readonly stats: Readonly<PcapCaptureStats>;
}

export interface PcapCaptureMode {
  /** Run libpcap in a supervised child process (default true). */
  isolate?: boolean;
  /**
   * This host's addresses; datagrams to any other destination are refused as `not-for-host`.
   * Default: a HostAddresses over os.networkInterfaces(). null turns the check off (tests that
   * feed frames for made-up addresses).
   */
  hostAddresses?: HostAddresses | null;
  /** Read the records of a capture process started elsewhere from this stream (see piped()). */
  frames?: NodeJS.ReadableStream;
  /** With `frames`: that process's stdin, where frames read are credited back (server/limits.ts CREDIT_WINDOW). */
  credits?: NodeJS.WritableStream;
}

/** Linux dev_valid_name(): 1-15 bytes, not "." or "..", no '/', ':' or whitespace. */
export function isValidDeviceName(name: string): boolean {
  return /^[^/:\s]{1,15}$/.test(name) && name !== '.' && name !== '..';
}

const EMPTY = Buffer.alloc(0);

export interface FrameHandlerOptions {
  port: number;
  maxPayload: number;
  onDatagram: (d: Datagram) => void;
  report: (err: unknown) => void;
  /** Is this canonical address one of this host's own (HostAddresses.has)? */
  isLocal: (address: string) => boolean;
}

/**
 * What every frame goes through, from either capture mode: decode, our port, addressed to this
 * host, not cut short; then one Datagram to onDatagram. Refusals are counted in `stats`.
 */
export function frameHandler(
  o: FrameHandlerOptions,
  stats: PcapCaptureStats,
): (linkType: number, frame: Uint8Array, truncated: boolean, receivedAt: bigint) => void {
  const { port, maxPayload, onDatagram, report, isLocal } = o;
  const rejected = stats.rejected as Record<PcapRejectReason, number>;
  const rejectAs = (why: PcapRejectReason): void => {
    stats.decodeErrors++;
    rejected[why] = (rejected[why] ?? 0) + 1;
  };
  return (linkType, frame, truncated, receivedAt) => {
    const r = decodeFrame(linkType, frame, { truncated });
    if (!r.ok) {
      rejectAs(r.reason);
      return;
    }
    if (r.udp.destinationPort !== port) {
      rejectAs('wrong-port');
      return;
    }
    // Promiscuous capture sees frames for other hosts (and broadcast/multicast): a knock is
    // only ours when sent to one of our own addresses.
    if (!isLocal(r.udp.destination)) {
      rejectAs('not-for-host');
      return;
    }
    // Within maxPayload yet cut: headers took more than HEADER_ROOM. Not a usable knock.
    if (r.udp.length <= maxPayload && r.udp.payload.length < r.udp.length) {
      rejectAs('cut-short');
      return;
    }
    const udp = r.udp;
    const oversize = udp.length > maxPayload;
    stats.received++;
    if (oversize) stats.oversize++;
    const d: Datagram = {
      source: udp.source,
      sourcePort: udp.sourcePort,
      destination: udp.destination,
      destinationPort: udp.destinationPort,
      payload: oversize ? EMPTY : Buffer.from(udp.payload),
      length: udp.length,
      oversize,
      receivedAt,
    };
    try {
      onDatagram(d);
    } catch (err) {
      report(err);
    }
  };
}

/** What recordSink() tells the code that started a capture process about its records. */
export interface RecordEvents {
  onReady(linkType: number): void;
  onError(message: string): void;
  onBadStream(): void;
  /** After each chunk, with the number of frames it held (to credit them back). */
  onFrames(n: number): void;
}

export function createPcapCapture(opts: PcapCaptureOptions & PcapCaptureMode): PcapCapture {
  const { device, port, maxPayload, onDatagram, onError } = opts;
  if (!isValidDeviceName(device)) {
    throw new ConfigError('CONFIG_INVALID', `interface name is not valid (length ${device.length})`, {
      field: 'interface',
    });
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError('CONFIG_INVALID', `port must be an integer 1-65535, got ${port}`, {
      field: 'port',
    });
  }
  if (!Number.isInteger(maxPayload) || maxPayload < 1 || maxPayload > CAP_SNAPLEN) {
    throw new ConfigError('CONFIG_INVALID', `maxPayload must be an integer 1-${CAP_SNAPLEN}`, {
      field: 'maxPayload',
    });
  }
  const bufferBytes = opts.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  if (!Number.isInteger(bufferBytes) || bufferBytes < 65536 || bufferBytes > 256 * 1024 * 1024) {
    throw new ConfigError('CONFIG_INVALID', 'bufferBytes must be an integer 64 KiB - 256 MiB', {
      field: 'bufferBytes',
    });
  }
  const frameBytes = Math.min(CAP_SNAPLEN, maxPayload + HEADER_ROOM);
  const stats: PcapCaptureStats = { received: 0, oversize: 0, decodeErrors: 0, rejected: {}, restarts: 0 };
  const report = (err: unknown): void => {
    onError?.(err instanceof Error ? err : new Error(String(err)));
  };

  const host = opts.hostAddresses === null ? null : (opts.hostAddresses ?? new HostAddresses());
  const isLocal = (address: string): boolean => host === null || host.has(address);
  const onFrame = frameHandler({ port, maxPayload, onDatagram, report, isLocal }, stats);

  const openError = (message: string, cause?: unknown): ConfigError =>
    new ConfigError('IO', `pcap: cannot capture on "${device}": ${message}`, { field: 'interface', cause });

  const checkDevice = (): void => {
    if (device !== 'any' && !existsSync(`/sys/class/net/${device}`)) {
      throw openError('no such network interface');
    }
  };

  /** A capture process's shed counts are cumulative per process: add what each one shed since its last report. */
  const shedBy = new WeakMap<object, Record<string, number>>();

  /**
   * Reads the records of one capture process (pcap-ipc.ts) and feeds its frames to onFrame.
   * `source` identifies the process (for its cumulative counts).
   */
  function recordSink(source: object, on: RecordEvents): (chunk: Buffer) => void {
    const reader = new RecordReader(frameBytes + 64);
    let linkType = 0;
    return (chunk: Buffer) => {
      reader.push(chunk);
      let frames = 0;
      try {
        for (let rec = reader.next(); rec; rec = reader.next()) {
          if (rec.type === 'frame') {
            if (rec.dropped > 0) stats.dropped = rec.dropped;
            frames++;
            onFrame(linkType, rec.frame, rec.truncated, rec.receivedAt);
          } else if (rec.type === 'ready') {
            linkType = rec.linkType;
            stats.linkType = linkType;
            on.onReady(linkType);
          } else if (rec.type === 'error') {
            on.onError(rec.message);
          } else if (rec.type === 'filtered') {
            const prev = shedBy.get(source) ?? {};
            const total = { ...(stats.prefiltered ?? {}) };
            for (const [reason, n] of Object.entries(rec.counts)) {
              total[reason] = (total[reason] ?? 0) + n - (prev[reason] ?? 0);
            }
            shedBy.set(source, rec.counts);
            stats.prefiltered = total;
          }
        }
        on.onFrames(frames);
      } catch (err) {
        report(err);
        on.onBadStream();
      }
    };
  }

  if (opts.frames) return piped(opts.frames, opts.credits);
  if (opts.isolate === false) return inProcess();
  return supervisedCapture({
    device,
    childArgs: () => captureChildArgs(opts),
    stats,
    recordSink,
    checkDevice,
    openError,
    report,
  });

  /**
   * Records from a capture process someone else started and supervises (spad's monitor starts it
   * with CAP_NET_RAW and hands its stdout to the verifier, which reads it here). start() resolves
   * on its READY record and rejects on its ERROR record or end of stream.
   */
  function piped(frames: NodeJS.ReadableStream, credits?: NodeJS.WritableStream): PcapCapture {
    let started: Promise<void> | undefined;
    let paused = false;
    let owed = 0;
    const credit = (): void => {
      if (owed === 0 || paused || !credits) return;
      credits.write(Buffer.alloc(owed));
      owed = 0;
    };
    credits?.on('error', () => {});
    return {
      stats,
      pause() {
        paused = true;
        frames.pause();
      },
      resume() {
        paused = false;
        frames.resume();
        credit();
      },
      start() {
        started ??= new Promise<void>((resolve, reject) => {
          let ready = false;
          let childError: string | undefined;
          const timer = setTimeout(
            () => reject(openError('the capture process did not start in time')),
            START_TIMEOUT_MS,
          );
          const sink = recordSink(frames, {
            onReady() {
              if (ready) return;
              ready = true;
              clearTimeout(timer);
              resolve();
            },
            onError(message) {
              childError = message;
            },
            onBadStream() {
              (frames as unknown as { destroy?: () => void }).destroy?.();
            },
            onFrames(n) {
              owed += n;
              credit();
            },
          });
          frames.on('data', sink);
          frames.on('error', (err: Error) => report(err));
          frames.on('end', () => {
            clearTimeout(timer);
            if (!ready) reject(openError(childError ?? 'capture process ended'));
            else
              report(
                new ConfigError(
                  'IO',
                  `pcap: capture process for "${device}" ended (${childError ?? 'end of stream'})`,
                ),
              );
          });
        });
        return started;
      },
      async stop() {
        (frames as unknown as { destroy?: () => void }).destroy?.();
      },
    };
  }

  function inProcess(): PcapCapture {
    let handle: CapHandle | undefined;
    const frame = Buffer.alloc(frameBytes);
    return {
      stats,
      async start() {
        if (handle) return;
        checkDevice();
        let opened: ReturnType<typeof openCap>;
        try {
          opened = openCap(device, port, bufferBytes, frame);
        } catch (err) {
          throw openError((err as Error).message, err);
        }
        const linkType = linkTypeFromCap(opened.linkName);
        if (linkType === null || !isSupportedLinkType(linkType)) {
          opened.cap.close();
          throw openError(`link type we cannot decode (${opened.linkName})`);
        }
        stats.linkType = linkType;
        opened.cap.on('packet', (nbytes, truncated) => {
          const receivedAt = process.hrtime.bigint();
          onFrame(linkType, frame.subarray(0, nbytes), truncated, receivedAt);
        });
        handle = opened.cap;
      },
      async stop() {
        const cap = handle;
        if (!cap) return;
        handle = undefined;
        cap.close();
        cap.removeAllListeners('packet');
      },
    };
  }
}
