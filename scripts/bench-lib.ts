/**
 * Pieces shared by the benchmarks (bench-knock, bench-flood, bench-keys, bench-fwknop) and the
 * flood and fault e2e tests: sealing knocks from a user's keystore, sending a batch of datagrams
 * from a namespace, the knock-to-open probe, the flooders (Node, and C with source spoofing), and
 * reading a process's CPU time and peak memory from /proc. Nothing here sends anything unbounded: batches are lists, the probe stops after
 * 2 s per knock.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveOwnKey, resolveServerKey } from '../keyring/index.js';
import { parseAddress } from '../protocol/address.js';
import { seal } from '../protocol/envelope.js';
import { makePayload } from '../protocol/payload.js';
import type { Host } from './netns.js';

const NODE = process.execPath;
export const PROBE = new URL('../test/e2e/fixtures/knock-probe.js', import.meta.url).pathname;

/** Sends every hex line of stdin as one datagram to ARGV[1]:ARGV[2] (default 62201), in order. */
export const BLAST = `
const dgram = require('dgram'); const rl = require('readline').createInterface({ input: process.stdin });
const to = process.argv[1]; const port = Number(process.argv[2] || 62201);
const s = dgram.createSocket(to.includes(':') ? 'udp6' : 'udp4');
const pk = []; rl.on('line', (l) => l && pk.push(Buffer.from(l, 'hex')));
rl.on('close', async () => { const t0 = process.hrtime.bigint(); const startedAt = Date.now();
  for (const p of pk) await new Promise((r) => s.send(p, port, to, r));
  console.log(JSON.stringify({ sent: pk.length, ms: Number(process.hrtime.bigint() - t0) / 1e6, startedAt })); s.close(); });`;

/** Sends these datagrams (hex) from `from` to `to`, one after the other, as fast as one process can. */
export async function blast(
  from: Host,
  to: string,
  hex: readonly string[],
  port = 62201,
): Promise<{ sent: number; ms: number; startedAt: number }> {
  const r = await from.exec(NODE, ['-e', BLAST, to, String(port)], {
    input: `${hex.join('\n')}\n`,
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`blast failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { sent: number; ms: number; startedAt: number };
}

/**
 * The raw figures of one benchmark, for scripts/bench-plot.ts: written as NAME.json (mode 0600)
 * into $SPA_BENCH_DATA when it is set (scripts/bench.sh sets it to its output folder's data/);
 * nothing is written otherwise.
 */
export function saveFigures(name: string, figures: unknown): void {
  const dir = process.env.SPA_BENCH_DATA;
  if (!dir) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(figures, null, 1)}\n`, { mode: 0o600 });
}

/** What each benchmark saves (ms: knock-to-open per knock in order, null = never opened). */
export interface KnockFigures {
  readonly modes: ReadonlyArray<{
    mode: 'pcap' | 'udp';
    ms: Array<number | null>;
    /** knocks/s and CPU ms per knock of the second burst (warm) */
    rate: number;
    cpuMs: number;
    /** the same for the first burst after start-up */
    cold?: { rate: number; cpuMs: number };
    /** warm CPU ms per knock by process (monitor cli.js, verifier.js, pcap-child.js, nft) */
    cpuByProcess?: Record<string, number>;
  }>;
}
export interface SystemFigures {
  readonly latency: { pcap: Array<number | null>; udp: Array<number | null> };
  rate: number;
  cpuMs: number;
  /** Client wall time of each real send, ms. */
  client: number[];
}
export interface FwknopFigures {
  readonly spa: SystemFigures;
  readonly fwknop: SystemFigures;
  /** `node -e 0` wall time in the same namespace, ms: the floor of any Node client. */
  readonly node: number[];
}
export interface FloodFigures {
  readonly scenarios: ReadonlyArray<{ name: string; pps: number | null; ms: Array<number | null> }>;
}

export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

export interface KnockOptions {
  readonly user: string;
  /** Address named in the payload (the packet source, unless the user may name another). */
  readonly source: string;
  readonly serverFingerprint: string;
  readonly ports?: ReadonlyArray<{ proto: 'tcp' | 'udp'; port: number }>;
  readonly timeoutSeconds?: number;
}

/** One valid knock sealed with the own key of the client home `home`: hex and its nonce (hex). */
export async function sealKnock(home: string, o: KnockOptions): Promise<{ hex: string; nonce: string }> {
  const own = await resolveOwnKey(home);
  const server = await resolveServerKey(home, o.serverFingerprint);
  const now = new Date();
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  const payload = makePayload({
    type: 'access',
    timestamp: Math.floor(now.getTime() / 1000),
    nonce,
    serverFingerprint: o.serverFingerprint,
    username: o.user,
    source: parseAddress(o.source),
    access: o.ports ?? [{ proto: 'tcp', port: 22 }],
    timeoutSeconds: o.timeoutSeconds ?? 0,
    command: null,
  });
  const bytes = await seal(payload, { signingKey: own.key, serverKey: server.key, now });
  return { hex: Buffer.from(bytes).toString('hex'), nonce: Buffer.from(nonce).toString('hex').toUpperCase() };
}

/** `n` valid knocks (distinct nonces) sealed with the own key of the client home `home`, hex. */
export async function sealKnocks(home: string, n: number, o: KnockOptions): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await sealKnock(home, o)).hex);
  return out;
}

/** utime + stime of a process (and, with `children`, of its waited-for children), in ms. */
export function cpuMs(pid: number, children = false): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
  return (ticks * 1000) / 100; // clock ticks of 10 ms
}

/** A field of /proc/PID/status in kB (VmHWM: peak resident set; VmRSS: now). */
export function statusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

/** Direct children of a process (e.g. spad's isolated pcap capture process). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** A process and every descendant, each named by its script's or program's file name. */
export function processTree(pid: number): Array<{ pid: number; name: string }> {
  const out: Array<{ pid: number; name: string }> = [];
  const walk = (p: number): void => {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      return; // gone
    }
    const script = argv.find((a) => a.endsWith('.js')) ?? argv[0] ?? '?';
    out.push({ pid: p, name: script.split('/').pop() ?? script });
    for (const c of childPids(p)) walk(c);
  };
  walk(pid);
  return out;
}

/**
 * CPU time (ms) of a process tree by process name, each with what it reaped. A child that ends
 * between two readings moves into its parent's figure (spad restarts its nft shell every 1,000
 * scripts): the sum of the tree stays right.
 */
export function cpuByProcess(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of processTree(pid)) {
    try {
      m.set(p.name, (m.get(p.name) ?? 0) + cpuMs(p.pid, true));
    } catch {
      // gone between listing and reading
    }
  }
  return m;
}

/** What spad did with one burst of valid knocks (spadBurst). */
export interface BurstFigures {
  granted: number;
  drops: string[];
  /** granted / (last grant − first datagram sent), per second */
  rate: number;
  /** CPU of spad and every process under it, per granted knock (ms) */
  cpuMs: number;
  /** the same by process (cli.js: the monitor; verifier.js; pcap-child.js; nft) */
  cpuByProcess: Record<string, number>;
}

/**
 * Sends `hex` from `from` to spad at `to` as fast as one process can and waits (at most 60 s)
 * until spad logged a grant or a drop for each. Knocks/s is taken from the first datagram sent
 * to the last grant's audit time, so neither the sender's start-up nor the polling counts.
 */
export async function spadBurst(
  spad: {
    proc: ChildProcess;
    lines: ReadonlyArray<{ event: string; reason?: string; [k: string]: unknown }>;
  },
  from: Host,
  to: string,
  hex: readonly string[],
): Promise<BurstFigures> {
  const pid = spad.proc.pid as number;
  const mark = spad.lines.length;
  const cpu0 = cpuByProcess(pid);
  const sent = await blast(from, to, hex);
  const done = () => spad.lines.slice(mark).filter((l) => l.event === 'grant' || l.event === 'drop');
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && done().length < hex.length) await new Promise((r) => setTimeout(r, 20));
  const cpu1 = cpuByProcess(pid);
  const lines = done();
  const grants = lines.filter((l) => l.event === 'grant');
  const lastGrant = Math.max(...grants.map((l) => Date.parse(String(l.time))));
  const granted = grants.length;
  const cpuByName: Record<string, number> = {};
  let total = 0;
  for (const [name, ms] of cpu1) {
    const d = ms - (cpu0.get(name) ?? 0);
    total += d;
    cpuByName[name] = d / Math.max(1, granted);
  }
  return {
    granted,
    drops: lines.filter((l) => l.event === 'drop').map((l) => String(l.reason)),
    rate: granted > 0 ? (granted * 1000) / Math.max(1, lastGrant - sent.startedAt) : 0,
    cpuMs: total / Math.max(1, granted),
    cpuByProcess: cpuByName,
  };
}

/**
 * The knock-to-open probe (test/e2e/fixtures/knock-probe.ts) running in `from`: `measure(hex)`
 * sends one knock and resolves with the ms until TCP `tcpPort` on `to` accepted a connection,
 * or null when it did not within 2 s.
 */
export interface Probe {
  measure(hex: string): Promise<number | null>;
  close(): void;
}

export function startProbe(from: Host, to: string, opts: { port?: number; tcp?: number } = {}): Probe {
  const child: ChildProcess = from.spawn(
    NODE,
    [PROBE, '--to', to, '--port', String(opts.port ?? 62201), '--tcp', String(opts.tcp ?? 22)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let buf = '';
  const waiting: Array<(ms: number | null) => void> = [];
  child.stdout?.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      waiting.shift()?.((JSON.parse(line) as { ms: number | null }).ms);
    }
  });
  return {
    measure(hex) {
      return new Promise((resolve) => {
        waiting.push(resolve);
        child.stdin?.write(`${hex}\n`);
      });
    },
    close() {
      child.stdin?.end();
      setTimeout(() => child.kill('SIGKILL'), 3000).unref();
    },
  };
}

/**
 * A UDP flooder in Node (no compiler needed): ARGV to, port, seconds, max packets, pps (0 = as
 * fast as it can), template hex ('' = random datagrams of 64..1400 bytes; else datagrams shaped
 * like the template, keeping the byte ranges of ARGV[7], JSON, see `keyIdGarbageKeep`). Keeps at
 * most 512 sends in flight; prints {"sent":N,"ms":T}. Bounded by both count and time.
 */
export const NODE_FLOOD = `
const dgram = require('dgram'); const crypto = require('crypto');
const [to, port, seconds, max, pps, tpl, keepJson] = process.argv.slice(1);
const s = dgram.createSocket(to.includes(':') ? 'udp6' : 'udp4'); s.on('error', () => {});
const pool = [];
const t = tpl ? Buffer.from(tpl, 'hex') : null;
const keep = t ? JSON.parse(keepJson || '[]') : [];
for (let i = 0; i < 4096; i++) {
  if (!t) { pool.push(crypto.randomBytes(64 + crypto.randomInt(1337))); continue; }
  const b = crypto.randomBytes(t.length);
  for (const [a, z] of keep) t.copy(b, a, a, z);
  pool.push(b);
}
const t0 = Date.now(); const end = t0 + Number(seconds) * 1000; const limit = Number(max); const rate = Number(pps);
let sent = 0, inflight = 0, finished = false;
const allowed = () => rate > 0 ? Math.min(limit, Math.floor(((Date.now() - t0) * rate) / 1000)) : limit;
const finish = () => { if (finished) return; finished = true; console.log(JSON.stringify({ sent, ms: Date.now() - t0 })); s.close(); };
const pump = () => {
  if (finished) return;
  const cap = allowed();
  while (inflight < 512 && sent < cap) {
    if ((sent & 1023) === 0 && Date.now() >= end) break;
    inflight++; sent++;
    s.send(pool[sent & 4095], Number(port), to, () => { inflight--; });
  }
  if (sent >= limit || Date.now() >= end) { if (inflight === 0) finish(); else setTimeout(pump, 5); }
  else if (inflight >= 512) setImmediate(pump);
  else setTimeout(pump, rate > 0 ? 2 : 0);
};
pump();`;

/**
 * Byte ranges of a real knock to keep so that a garbage datagram still passes the framing check
 * and names our key id: every header, version, key id, algorithm, MPI bit count and length octet
 * of a v3 ECDH (Curve25519) PKESK followed by a SEIPD. Everything else (the ephemeral point, the
 * wrapped session key, the encrypted data) is random in each flood packet.
 */
export function keyIdGarbageKeep(knock: Uint8Array): Array<[number, number]> {
  if (knock[0] !== 0xc1 || (knock[1] ?? 0) >= 192 || knock[11] !== 18) {
    throw new Error('keyIdGarbageKeep: expected a new-format v3 ECDH PKESK with a one-octet length');
  }
  const pkeskEnd = 2 + (knock[1] ?? 0);
  const l1 = knock[pkeskEnd + 1] ?? 0;
  const seipdVersionAt = pkeskEnd + 1 + (l1 < 192 ? 1 : l1 < 224 ? 2 : 5);
  return [
    [0, 15], // header, length, version, key id, algorithm, MPI bit count, 0x40 prefix
    [47, 48], // wrapped key length
    [pkeskEnd, seipdVersionAt + 1], // SEIPD header, length, version
  ];
}

/**
 * A UDP flooder in C using sendmmsg(2): one core, one socket, the highest rate one core sends.
 * ARGV: ip port seconds max [template-hex [keep-ranges "a-b,c-d" [spoof [pps]]]].
 * Without a template: random datagrams of 64..1400 bytes; with one: datagrams shaped like it,
 * keeping those byte ranges (see `keyIdGarbageKeep`). spoof: `-` (none: a UDP socket),
 * `random` (a raw socket, each datagram from a random address in 198.18.0.0/15) or an IPv4
 * address (a raw socket, every datagram from that address); spoofed datagrams come from 256
 * random source ports (32768-65535), so the fair queue's per-port level cannot tell them apart
 * from a knock by port alone. pps: 0 = as fast as it can, else
 * paced to that rate. Bounded by both count and time; prints {"sent":N,"ms":T}.
 */
export const FLOOD_C = `
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#define POOL 256
#define BATCH 64
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static int hex(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
int main(int argc, char **argv) {
  if (argc < 5) return 2;
  double seconds = atof(argv[3]); long max = atol(argv[4]);
  const char *spoofArg = argc > 7 ? argv[7] : "-";
  int spoof = strcmp(spoofArg, "-") != 0, randomSource = strcmp(spoofArg, "random") == 0;
  struct in_addr fixed;
  if (spoof && !randomSource && inet_pton(AF_INET, spoofArg, &fixed) != 1) return 2;
  double pps = argc > 8 ? atof(argv[8]) : 0;
  static unsigned char buf[POOL][1400 + 28]; static size_t len[POOL];
  unsigned char tpl[1400]; size_t tlen = 0;
  if (argc > 5 && strlen(argv[5]) > 0) { tlen = strlen(argv[5]) / 2; if (tlen > 1400) return 2;
    for (size_t i = 0; i < tlen; i++) tpl[i] = hex(argv[5][2 * i]) << 4 | hex(argv[5][2 * i + 1]); }
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
  if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) return 2;
  FILE *r = fopen("/dev/urandom", "rb"); if (!r) return 3;
  size_t off = spoof ? 28 : 0;
  for (int i = 0; i < POOL; i++) {
    size_t n = tlen ? tlen : 64 + (size_t)(rand() % 1337);
    if (fread(buf[i] + off, 1, n, r) != n) return 3;
    if (tlen && argc > 6) { char *s = strdup(argv[6]), *tok, *save;
      for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int a, b; if (sscanf(tok, "%d-%d", &a, &b) == 2 && a >= 0 && b <= (int)tlen) memcpy(buf[i] + off + a, tpl + a, b - a); }
      free(s); }
    if (spoof) { /* IPv4 + UDP headers (the kernel fills in the IP checksum; no UDP checksum) */
      unsigned char *h = buf[i]; unsigned char rnd[5]; if (fread(rnd, 1, 5, r) != 5) return 3;
      size_t tot = 28 + n; memset(h, 0, 28);
      h[0] = 0x45; h[2] = tot >> 8; h[3] = tot & 0xff; h[8] = 64; h[9] = 17;
      if (randomSource) { h[12] = 198; h[13] = 18 | (rnd[0] & 1); h[14] = rnd[1]; h[15] = rnd[2]; }
      else memcpy(h + 12, &fixed, 4);
      memcpy(h + 16, &to.sin_addr, 4);
      h[20] = rnd[3] | 0x80; h[21] = rnd[4]; memcpy(h + 22, &to.sin_port, 2); h[24] = (8 + n) >> 8; h[25] = (8 + n) & 0xff;
    }
    len[i] = n + off;
  }
  fclose(r);
  int fd = spoof ? socket(AF_INET, SOCK_RAW, IPPROTO_RAW) : socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return 4;
  if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) return 4;
  struct mmsghdr msgs[BATCH]; struct iovec iov[BATCH];
  long sent = 0; double t0 = now(), end = t0 + seconds; unsigned k = 0;
  while (sent < max) {
    double t = now();
    if (t >= end) break;
    long allowed = pps > 0 ? (long)((t - t0) * pps) + 1 : max;
    if (allowed > max) allowed = max;
    if (sent >= allowed) { struct timespec ts = { 0, 500000 }; nanosleep(&ts, NULL); continue; }
    int n = 0;
    for (; n < BATCH && sent + n < allowed; n++, k++) {
      iov[n].iov_base = buf[k % POOL]; iov[n].iov_len = len[k % POOL];
      memset(&msgs[n], 0, sizeof msgs[n]); msgs[n].msg_hdr.msg_iov = &iov[n]; msgs[n].msg_hdr.msg_iovlen = 1;
    }
    int m = sendmmsg(fd, msgs, n, 0);
    if (m > 0) sent += m;
  }
  printf("{\\"sent\\":%ld,\\"ms\\":%.0f}\\n", sent, (now() - t0) * 1000);
  return 0;
}
`;

/** Compiles FLOOD_C into `dir` with gcc; the binary's path, or null without a compiler. */
export function buildFlooder(dir: string): string | null {
  try {
    writeFileSync(join(dir, 'flood.c'), FLOOD_C);
    execFileSync('gcc', ['-O2', '-o', join(dir, 'flood'), join(dir, 'flood.c')], { stdio: 'pipe' });
    return join(dir, 'flood');
  } catch {
    return null;
  }
}

export interface FloodSpec {
  readonly to: string;
  readonly port?: number;
  readonly seconds: number;
  readonly maxPackets: number;
  /** A knock (hex) to shape datagrams like, keeping its key id (`keyIdGarbageKeep`); '' = random UDP. */
  readonly template: string;
  /** 'random': from random addresses in 198.18.0.0/15; an IPv4 address: from that address. */
  readonly spoof?: string;
  /** Datagrams a second; 0 (default) = as fast as one core sends. */
  readonly pps?: number;
}

/** Arguments of the FLOOD_C binary for `f`. */
export function flooderArgs(f: FloodSpec): string[] {
  const keep = f.template ? keyIdGarbageKeep(Buffer.from(f.template, 'hex')) : [];
  return [
    f.to,
    String(f.port ?? 62201),
    String(f.seconds),
    String(f.maxPackets),
    f.template,
    keep.map(([a, b]) => `${a}-${b}`).join(','),
    f.spoof ?? '-',
    String(f.pps ?? 0),
  ];
}
