/**
 * How a capture process (pcap-child.ts) is started: its script and argv, and the sizes both ends
 * agree on. Kept apart from pcap.ts so that spad's monitor, which starts the process but reads
 * none of its frames, loads no frame decoding.
 */
import { fileURLToPath } from 'node:url';
import { CREDIT_WINDOW, DEFAULT_BUFFER_BYTES } from '../limits.js';
import { CAP_SNAPLEN } from './cap-binding.js';
import type { PcapCaptureOptions } from './types.js';

/** Bytes of the capture buffer reserved for link + IP + extension + UDP headers. */
export const HEADER_ROOM = 512;
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
