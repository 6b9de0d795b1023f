/**
 * The pcap capture process (spawned by pcap.ts; not a user command). It holds the `cap`/libpcap
 * handle so that `cap`'s abort on a device going down ends this process, not spad: spad sees the
 * exit and starts a new one.
 *
 * argv: --device IF --port N --buffer-bytes N --frame-bytes N [--key-ids HEX,HEX [--credits N]]
 * stdin: with --credits, one byte per frame spad has read (its credit for N more frames).
 * stdout: records of pcap-ipc.ts (READY once open, then FRAME per packet, ERROR if open fails,
 * FILTERED about once a second while a flood is being shed).
 * It exits when stdin closes (spad stopped or died), on SIGTERM, or after an ERROR.
 *
 * Frames are passed on undecoded (spad decodes them: one decoder, one set of counters), stamped
 * with receivedAt here. With --key-ids, junk beyond a small per-second allowance is shed here
 * and only counted, and what may be a knock waits in a fair queue while spad is not reading
 * (prefilter.ts FramePump): a flood cannot crowd knocks out of the pipe, and what is shed comes
 * from the busiest sources. Without --key-ids, if spad falls more than CAPTURE_QUEUED_BYTES_MAX bytes (server/limits.ts) behind,
 * frames are dropped here and counted. Memory stays bounded on both sides.
 */
import { parseArgs } from 'node:util';
import { CAPTURE_QUEUED_BYTES_MAX } from '../limits.js';
import { openCap } from './cap-binding.js';
import { isSupportedLinkType, linkTypeFromCap } from './decode.js';
import { encodeError, encodeFiltered, encodeFrame, encodeReady } from './pcap-ipc.js';
import { FramePump, Prefilter } from './prefilter.js';

const { values } = parseArgs({
  options: {
    device: { type: 'string' },
    port: { type: 'string' },
    'buffer-bytes': { type: 'string' },
    'frame-bytes': { type: 'string' },
    'key-ids': { type: 'string' },
    credits: { type: 'string' },
  },
});

const out = process.stdout;

/** Reports why we cannot capture and exits once the record is written. */
function fail(message: string): void {
  out.write(encodeError(message), () => process.exit(1));
  setTimeout(() => process.exit(1), 1000).unref();
}

function main(): void {
  const frame = Buffer.alloc(Number(values['frame-bytes']));
  let opened: ReturnType<typeof openCap>;
  try {
    // with our key ids we also know a knock's shape: let the kernel filter drop what cannot be one
    const knocksOnly = (values['key-ids'] ?? '') !== '';
    opened = openCap(
      values.device ?? '',
      Number(values.port),
      Number(values['buffer-bytes']),
      frame,
      knocksOnly,
    );
  } catch (err) {
    fail((err as Error).message);
    return;
  }
  const { cap, linkName } = opened;
  const linkType = linkTypeFromCap(linkName);
  if (linkType === null || !isSupportedLinkType(linkType)) {
    cap.close();
    fail(`link type we cannot decode (${linkName})`);
    return;
  }

  const keyIds = values['key-ids']?.split(',').filter(Boolean) ?? [];
  const prefilter = keyIds.length > 0 ? new Prefilter(new Set(keyIds.map((k) => k.toUpperCase()))) : null;
  const credits = Number(values.credits ?? 'Infinity');
  const pump = prefilter
    ? new FramePump(out, () => prefilter.shed('RATE_LIMITED'), undefined, credits > 0 ? credits : Infinity)
    : null;
  if (prefilter) {
    setInterval(() => {
      const counts = prefilter.takeCounts();
      if (counts) out.write(encodeFiltered(counts));
    }, 1000).unref();
  }
  let dropped = 0;
  cap.on('packet', (nbytes: number, truncated: boolean) => {
    const receivedAt = process.hrtime.bigint();
    if (prefilter && pump) {
      const f = frame.subarray(0, nbytes);
      const now = Date.now();
      const v = prefilter.judge(linkType, f, truncated, now);
      if (v === null) return;
      const record = (): Buffer => encodeFrame(f, truncated, dropped, receivedAt);
      if ('source' in v) pump.knock(record, v.source, now, v.port);
      else if (!pump.junk(record())) prefilter.shed(v.junk);
      return;
    }
    if (out.writableLength > CAPTURE_QUEUED_BYTES_MAX) {
      dropped++;
      return;
    }
    out.write(encodeFrame(frame.subarray(0, nbytes), truncated, dropped, receivedAt));
  });
  out.write(encodeReady(linkType));

  const shutdown = (): void => {
    cap.close();
    process.exit(0);
  };
  process.stdin.on('data', (chunk: Buffer) => pump?.credit(chunk.length));
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
  process.on('SIGTERM', shutdown);
}

main();
