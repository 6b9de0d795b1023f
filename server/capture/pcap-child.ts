/**
 * The pcap capture process (spawned by pcap.ts; not a user command). It holds the `cap`/libpcap
 * handle so that `cap`'s abort on a device going down ends this process, not spad: spad sees the
 * exit and starts a new one.
 *
 * argv: --device IF --port N --buffer-bytes N --frame-bytes N [--key-ids HEX,HEX
 *       [--rate-burst N --rate-per-second N]]
 * stdout: records of pcap-ipc.ts (READY once open, then FRAME per packet, ERROR if open fails,
 * FILTERED about once a second while a flood is being shed).
 * It exits when stdin closes (spad stopped or died), on SIGTERM, or after an ERROR.
 *
 * Frames are passed on undecoded (spad decodes them: one decoder, one set of counters), stamped
 * with receivedAt here. With --key-ids, junk beyond a small per-second allowance is shed here
 * and only counted (prefilter.ts), so a flood cannot crowd knocks out of the pipe. Back-pressure: if spad falls more than MAX_QUEUED bytes behind, frames
 * are dropped here and counted, so memory stays bounded on both sides.
 */
import { parseArgs } from 'node:util';
import { openCap } from './cap-binding.js';
import { isSupportedLinkType, linkTypeFromCap } from './decode.js';
import { encodeError, encodeFiltered, encodeFrame, encodeReady } from './pcap-ipc.js';
import { RateLimiter } from '../ratelimit.js';
import { Prefilter } from './prefilter.js';

const MAX_QUEUED = 1024 * 1024;

const { values } = parseArgs({
  options: {
    device: { type: 'string' },
    port: { type: 'string' },
    'buffer-bytes': { type: 'string' },
    'frame-bytes': { type: 'string' },
    'key-ids': { type: 'string' },
    'rate-burst': { type: 'string' },
    'rate-per-second': { type: 'string' },
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
  const burst = Number(values['rate-burst']);
  const perSecond = Number(values['rate-per-second']);
  const rate =
    burst > 0 && perSecond > 0
      ? new RateLimiter({ burst, perSecond, globalPerSecond: 1e9, maxSources: 65_536 }) // global budget stays spad's
      : null;
  const prefilter =
    keyIds.length > 0 ? new Prefilter(new Set(keyIds.map((k) => k.toUpperCase())), undefined, rate) : null;
  if (prefilter) {
    setInterval(() => {
      const counts = prefilter.takeCounts();
      if (counts) out.write(encodeFiltered(counts));
    }, 1000).unref();
  }
  let dropped = 0;
  cap.on('packet', (nbytes: number, truncated: boolean) => {
    const receivedAt = process.hrtime.bigint();
    if (prefilter && !prefilter.pass(linkType, frame.subarray(0, nbytes), truncated, Date.now())) return;
    if (out.writableLength > MAX_QUEUED) {
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
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
  process.on('SIGTERM', shutdown);
}

main();
