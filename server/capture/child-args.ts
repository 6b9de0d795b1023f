/**
 * How a capture process (pcap-child.ts) is started: its script and argv, and the sizes both ends
 * agree on. Kept apart from pcap.ts so that spad's monitor, which starts the process but reads
 * none of its frames, loads no frame decoding.
 */
import { fileURLToPath } from 'node:url';
import { CAP_SNAPLEN } from './cap-binding.js';
import type { PcapCaptureOptions } from './types.js';

/**
 * Frames the capture process may have on the way to spad before spad credits them back (one byte
 * on the child's stdin per frame read). spad withholds credits while the pipeline is backlogged
 * (pause()), so at most this many frames wait in the pipe in arrival order; the rest wait in the
 * capture process's fair queue (prefilter.ts FramePump), which decides whose turn is next.
 */
export const CREDIT_WINDOW = 8;

/** Bytes of the capture buffer reserved for link + IP + extension + UDP headers. */
export const HEADER_ROOM = 512;
/**
 * Kernel ring size. `cap` fixes snaplen at 65535, and in immediate mode libpcap uses fixed-size
 * ring frames sized by snaplen (~64 KiB each), so 2 MiB held only ~31 datagrams: a burst of 300
 * knocks lost half of them. 32 MiB holds ~500 frames; measured: 300 back-to-back datagrams, 300
 * delivered (2 MiB: 115).
 */
export const DEFAULT_BUFFER_BYTES = 32 * 1024 * 1024;

/** The capture process's script (spawned by pcap.ts, or by spad's monitor). */
export const CAPTURE_CHILD_SCRIPT = fileURLToPath(new URL('./pcap-child.js', import.meta.url));

/** argv of pcap-child.ts for these options (after the script path). */
export function captureChildArgs(opts: PcapCaptureOptions): string[] {
  const bufferBytes = opts.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  const frameBytes = Math.min(CAP_SNAPLEN, opts.maxPayload + HEADER_ROOM);
  return [
    '--device',
    opts.device,
    '--port',
    String(opts.port),
    '--buffer-bytes',
    String(bufferBytes),
    '--frame-bytes',
    String(frameBytes),
    ...(opts.recipientKeyIds?.length
      ? ['--key-ids', opts.recipientKeyIds.join(','), '--credits', String(CREDIT_WINDOW)]
      : []),
  ];
}
