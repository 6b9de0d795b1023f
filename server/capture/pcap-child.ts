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
 * from the busiest sources. The pipes are then read and written from the packet callback itself
 * (child-io.ts), because a flood faster than this process keeps `cap`'s callback from returning
 * to the event loop. Without --key-ids (tests), if spad falls more than CAPTURE_QUEUED_BYTES_MAX
 * bytes (server/limits.ts) behind, frames are dropped here and counted. Memory stays bounded on
 * both sides.
 */
import { parseArgs } from 'node:util';
import { CAPTURE_QUEUED_BYTES_MAX } from '../limits.js';
import { type CapHandle, openCap } from './cap-binding.js';
import { isSupportedLinkType, linkTypeFromCap } from './decode.js';
import { ChildIo, readFd, SyncRecordOut, writeFd } from './child-io.js';
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

/** Reports why we cannot capture and exits once the record is written. */
function fail(message: string): void {
  new SyncRecordOut(writeFd(1)).write(encodeError(message));
  process.exit(1);
}

/** Closes the device and exits: spad stopped (end of stdin) or SIGTERM. */
function shutdownOf(cap: CapHandle): () => void {
  return () => {
    cap.close();
    process.exit(0);
  };
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
  if (keyIds.length > 0) withPrefilter(cap, linkType, frame, new Set(keyIds.map((k) => k.toUpperCase())));
  else unfiltered(cap, linkType, frame);
}

/** Tests' mode: every frame to spad through the stdout stream, dropped beyond a byte bound. */
function unfiltered(cap: CapHandle, linkType: number, frame: Buffer): void {
  const out = process.stdout;
  let dropped = 0;
  cap.on('packet', (nbytes: number, truncated: boolean) => {
    const receivedAt = process.hrtime.bigint();
    if (out.writableLength > CAPTURE_QUEUED_BYTES_MAX) {
      dropped++;
      return;
    }
    out.write(encodeFrame(frame.subarray(0, nbytes), truncated, dropped, receivedAt));
  });
  out.write(encodeReady(linkType));
  const shutdown = shutdownOf(cap);
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
  process.on('SIGTERM', shutdown);
}

/**
 * spad's mode: the flood shield (prefilter.ts) and credit flow control, with all pipe I/O done
 * synchronously (child-io.ts) so that it goes on while a flood holds the packet callback.
 * stdout is never opened as a stream here: records go out by writeSync on fd 1 only.
 */
function withPrefilter(cap: CapHandle, linkType: number, frame: Buffer, keyIds: ReadonlySet<string>): void {
  const prefilter = new Prefilter(keyIds);
  const credits = Number(values.credits ?? 'Infinity');
  const sink = new SyncRecordOut(writeFd(1));
  const pump = new FramePump(
    sink,
    () => prefilter.shed('RATE_LIMITED'),
    undefined,
    credits > 0 ? credits : Infinity,
  );
  const shutdown = shutdownOf(cap);
  // process.stdin first: opening it makes fd 0 non-blocking, which readFd needs
  process.stdin.on('data', (chunk: Buffer) => pump.credit(chunk.length));
  process.stdin.on('end', () => io.end());
  process.stdin.on('error', () => io.end());
  const io = new ChildIo({
    out: sink,
    readCredits: readFd(0),
    onCredit: (n) => pump.credit(n),
    filtered: () => {
      const counts = prefilter.takeCounts();
      return counts ? encodeFiltered(counts) : null;
    },
    onEnd: shutdown,
  });
  cap.on('packet', (nbytes: number, truncated: boolean) => {
    const receivedAt = process.hrtime.bigint();
    const f = frame.subarray(0, nbytes);
    const now = Date.now();
    const v = prefilter.judge(linkType, f, truncated, now);
    if (v !== null) {
      const record = (): Buffer => encodeFrame(f, truncated, 0, receivedAt);
      if ('source' in v) pump.knock(record, v.source, now, v.port);
      else if (!pump.junk(record())) prefilter.shed(v.junk);
    }
    io.maybeService(receivedAt);
  });
  sink.write(encodeReady(linkType));
  // the event loop's turn (idle periods): the same service as from the packet callback
  setInterval(() => io.service(), 250).unref();
  process.stdin.resume();
  process.on('SIGTERM', shutdown);
}

main();
