/**
 * spad's verifier process (started by the monitor, server/monitor-process.ts; not a user command).
 * It runs with no privilege at all (no capabilities, no-new-privs, an unprivileged uid) and does
 * everything that reads the network: capture (the pcap capture process's records on fd 0, or a
 * UDP socket it binds), then every pipeline step up to the decision (server/pipeline.ts). A
 * decision is sent to the monitor, which verifies it again before acting (server/monitor.ts).
 *
 * fd 4 (pcap mode): the capture process's stdin, one byte per frame read (its credit).
 * fd 3: messages from the monitor (ipc.ts MonitorMessage, one JSON line each): init first (the
 * server key, the allowlist, settings, live replay entries), then reload and accepted notices.
 * fd 1: messages to the monitor (ipc.ts VerifierMessage). It writes no file. It exits when fd 3
 * ends (the monitor stopped or died).
 */
import { closeSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import * as openpgp from 'openpgp';
import type { KeyRecord } from '../keyring/index.js';
import { pgpConfig } from '../keyring/inspect.js';
import { serverIdentity, signedBytes } from '../protocol/envelope.js';
import { ConfigError } from '../protocol/errors.js';
import { PACKET_MAX_BYTES } from '../protocol/limits.js';
import type { Audit, AuditEvent, AuditFields } from './audit.js';
import { createPcapCapture, createUdpCapture } from './capture/index.js';
import type { Capture, CaptureStats, Datagram } from './capture/types.js';
import {
  encodeLine,
  LineSplitter,
  type MonitorMessage,
  VERIFIER_EVENTS,
  type VerifierMessage,
} from './ipc.js';
import { type ActHandler, Pipeline } from './pipeline.js';
import { LaneDedupe } from './lane-dedupe.js';
import { ReplayStore } from './replay.js';
import { buildDirectory, type LoadedUsers } from './directory.js';

const out = process.stdout;
function send(msg: VerifierMessage): void {
  out.write(encodeLine(msg));
}

/**
 * Enrolled keys, parsed on first use. The same checks as the keyring's publicKeyOf (a public key,
 * with the fingerprint of its record), without loading the keyring modules (server/directory.ts
 * says why). The monitor verifies every decision with its own copy of the keys anyway.
 */
const parsed = new WeakMap<KeyRecord, Promise<openpgp.PublicKey>>();
function keyOf(r: KeyRecord): Promise<openpgp.PublicKey> {
  let p = parsed.get(r);
  if (!p) {
    p = (async () => {
      const key = await openpgp.readKey({ armoredKey: r.publicKey, config: await pgpConfig() });
      if (key.isPrivate() || key.getFingerprint().toUpperCase() !== r.fingerprint) {
        throw new ConfigError(
          'KEYRING_CORRUPT',
          `keys.${r.fingerprint}.publicKey: not the enrolled public key`,
        );
      }
      return key as openpgp.PublicKey;
    })();
    p.catch(() => parsed.delete(r));
    parsed.set(r, p);
  }
  return p;
}

const usersOf = (records: KeyRecord[]): LoadedUsers =>
  buildDirectory(new Map(records.map((r) => [r.fingerprint, r])), keyOf);

/** Audit lines go to the monitor, bounded to what its schema accepts. */
const audit: Audit = {
  log(event: AuditEvent, fields: AuditFields = {}) {
    if (!(VERIFIER_EVENTS as readonly string[]).includes(event)) return;
    const clean: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(fields)) {
      if (!/^[a-zA-Z]{1,16}$/.test(k) || k === 'where') continue;
      if (typeof v === 'string') clean[k] = v.slice(0, 512);
      else if (typeof v === 'number' || typeof v === 'boolean') clean[k] = v;
    }
    send({ t: 'audit', event: event as (typeof VERIFIER_EVENTS)[number], fields: clean });
  },
  flush() {},
};

function fatal(detail: string): never {
  // stderr too, synchronously: the monitor reports a start that fails with its stderr's last words
  writeSync(2, `spad verifier: ${detail.slice(0, 512)}\n`);
  out.write(encodeLine({ t: 'fatal', detail: detail.slice(0, 512) }), () => process.exit(1));
  setTimeout(() => process.exit(1), 1000).unref();
  throw new Error(detail);
}

async function start(
  init: Extract<MonitorMessage, { t: 'init' }>,
  onMessage: (f: (m: MonitorMessage) => void) => void,
): Promise<void> {
  const key = await openpgp.readPrivateKey({ armoredKey: init.serverKey, config: await pgpConfig() });
  const identity = await serverIdentity(key);
  let users = usersOf(init.records);
  const { settings } = init;
  const now = (): number => Date.now();
  const replay = new ReplayStore(null);
  for (const e of init.replay) replay.add(e);
  let decided = 0;
  const act: ActHandler = async ({ datagram: d, opened, raw, fwknop }) => {
    const signed = signedBytes(opened.signed);
    send({
      t: 'decision',
      source: d.source,
      sport: d.sourcePort,
      raw,
      literal: Buffer.from(signed.literal).toString('base64'),
      signature: Buffer.from(signed.signature).toString('base64'),
      receivedAt: d.receivedAt.toString(),
      ...(fwknop ? { fwknop } : {}),
    });
    decided++;
    return { ok: true };
  };
  const pipeline = new Pipeline({
    identity,
    users: () => users,
    replay,
    act,
    audit,
    now,
    maxSkewSeconds: settings.maxSkewSeconds,
    gateway: settings.gateway ?? null,
    // a backlog withholds the capture process's credits, so it sheds the flood fairly instead
    onBacklog: (busy) => (busy ? capture?.pause?.() : capture?.resume?.()),
  });
  // who got in just before a restart keeps the returning-source lane (fairqueue.ts)
  pipeline.restoreReturning(init.replay);
  let capture: Capture | null = null;
  // pcap mode: the returning lane's copy and the captured one are one datagram (lane-dedupe.ts)
  const dedupe = new LaneDedupe(now, (source) => pipeline.isReturning(source));
  let laneDatagrams = 0;
  let laneDuplicates = 0;
  const fromLane = (m: Extract<MonitorMessage, { t: 'datagram' }>): void => {
    const payload = Buffer.from(m.bytes, 'base64');
    if (payload.length === 0 || payload.length > PACKET_MAX_BYTES) return; // the monitor sends neither
    const d: Datagram = {
      source: m.source,
      sourcePort: m.port,
      destination: m.source.includes(':') ? '::' : '0.0.0.0',
      destinationPort: settings.port,
      payload,
      length: payload.length,
      oversize: false,
      receivedAt: BigInt(m.receivedAt),
    };
    laneDatagrams++;
    if (dedupe.duplicate(d, 'lane')) laneDuplicates++;
    else pipeline.submit(d);
  };
  onMessage((m) => {
    if (m.t === 'reload') users = usersOf(m.records);
    else if (m.t === 'datagram') fromLane(m);
    else if (m.t === 'accepted') replay.add(m.entry);
    else if (m.t === 'reply') void capture?.send?.(Buffer.from(m.bytes, 'base64'), m.address, m.port);
    else if (m.t === 'stop') {
      void (async () => {
        await capture?.stop();
        await pipeline.idle();
        out.write('', () => process.exit(0));
      })();
    }
  });

  const onDatagram = (d: Datagram): void => {
    if (settings.capture.mode === 'pcap' && dedupe.duplicate(d, 'capture')) laneDuplicates++;
    else pipeline.submit(d);
  };
  const onError = (e: Error): void => audit.log('error', { detail: `capture: ${e.message}` });
  const maxPayload = PACKET_MAX_BYTES;
  capture =
    settings.capture.mode === 'pcap'
      ? createPcapCapture({
          device: settings.capture.device,
          port: settings.port,
          maxPayload,
          onDatagram,
          onError,
          frames: process.stdin,
          credits: new Socket({ fd: 4, readable: false, writable: true }),
        })
      : createUdpCapture({
          host: settings.capture.host,
          port: settings.port,
          maxPayload,
          onDatagram,
          onError,
        });
  try {
    await capture.start();
  } catch (err) {
    fatal((err as Error).message);
  }
  if (settings.capture.mode === 'pcap') {
    // the capture process ending ends this verifier too: the monitor restarts both
    process.stdin.on('end', () => fatal('capture process ended'));
  }

  const shedSeen: Record<string, number> = {};
  const tick = (): void => {
    pipeline.flushDropSummary();
    const stats = (capture as Capture).stats as CaptureStats & {
      rejected?: Record<string, number>;
      restarts?: number;
      linkType?: number;
    };
    for (const [reason, total] of Object.entries(stats.prefiltered ?? {})) {
      const delta = total - (shedSeen[reason] ?? 0);
      if (delta > 0) pipeline.countShed(reason, delta);
      shedSeen[reason] = total;
    }
    replay.prune(now());
    const counters = Object.fromEntries(pipeline.counters);
    if (decided > 0) counters.DECIDED = decided;
    if (laneDatagrams > 0) counters.LANE = laneDatagrams;
    if (laneDuplicates > 0) counters.LANE_DUPLICATE = laneDuplicates;
    send({
      t: 'counters',
      counters,
      capture: {
        received: stats.received,
        oversize: stats.oversize,
        decodeErrors: stats.decodeErrors,
        ...(stats.dropped !== undefined ? { dropped: stats.dropped } : {}),
        ...(stats.linkType !== undefined ? { linkType: stats.linkType } : {}),
        ...(stats.prefiltered ? { prefiltered: stats.prefiltered } : {}),
        ...(stats.rejected ? { rejected: stats.rejected } : {}),
      },
    });
  };
  setInterval(tick, 1000);
  send({ t: 'ready' });
  tick();
}

function main(): void {
  // Its own directory (monitor-process.ts verifierDir), entered now that it runs as its account,
  // through the O_PATH descriptor the monitor passed: by name it is inside the 0700 state
  // directory, which this account cannot search.
  const at = process.argv.indexOf('--dir-fd');
  const fd = at >= 0 ? Number(process.argv[at + 1]) : Number.NaN;
  if (Number.isInteger(fd) && fd > 2) {
    try {
      process.chdir(`/proc/self/fd/${fd}`);
    } catch {
      process.chdir('/');
    }
    closeSync(fd);
  }
  const control = new Socket({ fd: 3, readable: true, writable: false });
  let handler: ((m: MonitorMessage) => void) | null = null;
  const early: MonitorMessage[] = [];
  let started = false;
  // Lines from the monitor, which this process trusts, so no length limit: the init line of a
  // large keyring is megabytes, and only each new chunk is searched for its end (a string
  // appended to and searched from the start took 1.3 s of start-up with 10,000 keys).
  const lines = new LineSplitter(
    Number.MAX_SAFE_INTEGER,
    (line) => {
      const m = JSON.parse(line) as MonitorMessage;
      if (m.t === 'init' && !started) {
        started = true;
        start(m, (f) => {
          handler = f;
          for (const e of early.splice(0)) f(e);
        }).catch((err: unknown) => fatal((err as Error).message));
      } else if (handler) {
        handler(m);
      } else {
        early.push(m);
      }
    },
    () => undefined,
  );
  control.on('data', (chunk: Buffer) => lines.push(chunk));
  const bye = (): void => process.exit(0);
  control.on('end', bye);
  control.on('error', bye);
  out.on('error', bye);
}

main();
