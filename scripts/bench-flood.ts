/**
 * Flood benchmark (DESIGN.md §7: "under a bounded flood of random UDP at the highest rate one
 * core can send, and of packets carrying our key id with garbage inside, a valid knock still opens
 * within 100 ms; memory bounded"), in throw-away namespaces with the real spad (pcap, nftables,
 * default rate limits).
 *
 * For each scenario (no flood, random UDP, key id + garbage) spad is started afresh, the attacker
 * namespace floods the SPA port for at most --seconds (<= 10) and --max-packets (<= 2,000,000),
 * and after one second the client knocks --knocks times, 300 ms apart, timing knock-to-open with
 * test/e2e/fixtures/knock-probe.ts. Printed per scenario: the flood rate reached, knocks opened,
 * median and worst knock-to-open, spad's CPU (main + capture process) during the flood, its peak
 * RSS (VmHWM), and the frames the capture process dropped.
 *
 * The flooder is a small C program using sendmmsg(2), compiled with gcc when present (one core,
 * one socket: the highest rate one core can send); without gcc, a Node sender is used and the
 * table says so. Key id + garbage datagrams keep a real knock's headers, key id and length octets
 * (scripts/bench-lib.ts keyIdGarbageKeep), so they pass the framing check and reach the rate limiter.
 * The last scenario sends them from random spoofed sources in 198.18.0.0/15 (raw socket, C
 * flooder only), so the per-source limit does not shield and only the global one does.
 *
 * Usage: node dist/scripts/bench-flood.js [--seconds 10] [--max-packets 2000000] [--knocks 10]
 * Needs root. Cleans up namespaces, processes and temp files even when it fails, and on
 * SIGINT/SIGTERM/SIGHUP (scripts/cleanup.ts).
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type FaultRig, faultRig } from '../test/e2e/faults-harness.js';
import { childPids, cpuMs, keyIdGarbageKeep, NODE_FLOOD, pct, startProbe, statusKb } from './bench-lib.js';
import { onInterrupt, tempDir } from './cleanup.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    'max-packets': { type: 'string', default: '2000000' },
    knocks: { type: 'string', default: '10' },
  },
});
const SECONDS = Math.min(10, Math.max(2, Number(values.seconds)));
const MAX_PACKETS = Math.min(2_000_000, Number(values['max-packets']));
const KNOCKS = Math.min(30, Number(values.knocks));

const FLOOD_C = `
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
struct udpip { unsigned char ip[20]; unsigned char udp[8]; };
int main(int argc, char **argv) {
  /* argv: ip port seconds max [template-hex [keep-ranges "a-b,c-d" [spoof]]] */
  if (argc < 5) return 2;
  double seconds = atof(argv[3]); long max = atol(argv[4]);
  int spoof = argc > 7 && strcmp(argv[7], "spoof") == 0;
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
    if (spoof) { /* IPv4 + UDP headers; source: a random address in 198.18.0.0/15 */
      unsigned char *h = buf[i]; unsigned char rnd[3]; if (fread(rnd, 1, 3, r) != 3) return 3;
      size_t tot = 28 + n; memset(h, 0, 28);
      h[0] = 0x45; h[2] = tot >> 8; h[3] = tot & 0xff; h[8] = 64; h[9] = 17;
      h[12] = 198; h[13] = 18 | (rnd[0] & 1); h[14] = rnd[1]; h[15] = rnd[2];
      memcpy(h + 16, &to.sin_addr, 4);
      h[20] = 0x9c; h[21] = 0x40; memcpy(h + 22, &to.sin_port, 2); h[24] = (8 + n) >> 8; h[25] = (8 + n) & 0xff;
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
    if ((sent & 4095) < BATCH && now() >= end) break;
    int n = 0;
    for (; n < BATCH && sent + n < max; n++, k++) {
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

function buildFlooder(dir: string): string | null {
  try {
    writeFileSync(join(dir, 'flood.c'), FLOOD_C);
    execFileSync('gcc', ['-O2', '-o', join(dir, 'flood'), join(dir, 'flood.c')], { stdio: 'pipe' });
    return join(dir, 'flood');
  } catch {
    return null;
  }
}

interface Row {
  scenario: string;
  'flood pps': string;
  opened: string;
  'knock→open median ms': string;
  'max ms': string;
  'spad CPU %': string;
  'peak RSS MB (spad+capture)': string;
  'capture dropped': string;
  drops: string;
}

async function scenario(
  rig: FaultRig,
  name: string,
  flooder: string | null,
  template: string | null,
  spoof = false,
): Promise<Row> {
  await rig.spad.stop();
  const spad = await rig.start();
  const pid = spad.proc.pid as number;
  const server = rig.topo.server.ipv4;
  let flood: ChildProcess | null = null;
  let out = '';
  let exited: Promise<void> = Promise.resolve();
  const cpus = (): number => cpuMs(pid) + childPids(pid).reduce((s, p) => s + cpuMs(p), 0);
  const probe = startProbe(rig.topo.client, server);
  try {
    const c0 = cpus();
    const t0 = Date.now();
    if (template !== null) {
      const keep = template ? keyIdGarbageKeep(Buffer.from(template, 'hex')) : [];
      const args = flooder
        ? [
            String(server),
            '62201',
            String(SECONDS),
            String(MAX_PACKETS),
            template,
            keep.map(([a, b]) => `${a}-${b}`).join(','),
            ...(spoof ? ['spoof'] : []),
          ]
        : [
            '-e',
            NODE_FLOOD,
            server,
            '62201',
            String(SECONDS),
            String(MAX_PACKETS),
            '0',
            template,
            JSON.stringify(keep),
          ];
      flood = rig.topo.attacker.spawn(flooder ?? process.execPath, args, {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      flood.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
      });
      const f = flood;
      exited = new Promise<void>((r) => f.once('exit', () => r()));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const knocks = await rig.knocks(KNOCKS);
    const ms: Array<number | null> = [];
    for (const k of knocks) {
      ms.push(await probe.measure(k));
      await rig.control('fw-flush');
      await new Promise((r) => setTimeout(r, 300));
    }
    await exited;
    const elapsed = (Date.now() - t0) / 1000;
    const c1 = cpus();
    const rss = statusKb(pid, 'VmHWM') + childPids(pid).reduce((s, p) => s + statusKb(p, 'VmHWM'), 0);
    const status = (await rig.control('status')) as {
      counters: Record<string, number>;
      captureStats: { received: number; dropped?: number };
    };
    const f = out ? (JSON.parse(out) as { sent: number; ms: number }) : null;
    const ok = ms.filter((x): x is number => x !== null);
    return {
      scenario: name,
      'flood pps': f
        ? `${Math.round((f.sent * 1000) / f.ms).toLocaleString('en')} (${f.sent.toLocaleString('en')} sent)`
        : '-',
      opened: `${ok.length}/${ms.length}`,
      'knock→open median ms': ok.length ? pct(ok, 50).toFixed(1) : '-',
      'max ms': ok.length ? Math.max(...ok).toFixed(1) : '-',
      'spad CPU %': (((c1 - c0) / 10 / elapsed) | 0).toString(),
      'peak RSS MB (spad+capture)': (rss / 1024).toFixed(0),
      'capture dropped': `${(status.captureStats.dropped ?? 0).toLocaleString('en')} of ${(
        status.captureStats.received + (status.captureStats.dropped ?? 0)
      ).toLocaleString('en')}`,
      drops: Object.entries(status.counters)
        .filter(([k]) => k !== 'GRANTED')
        .map(([k, v]) => `${k}:${v}`)
        .join(' '),
    };
  } finally {
    probe.close();
    flood?.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const tmp = tempDir('spa-bench-flood-');
  const dir = tmp.path;
  const flooder = buildFlooder(dir);
  const rig = await faultRig({ auditLog: join(dir, 'audit.jsonl') });
  const cleanup = onInterrupt(async () => {
    await rig.close();
    await tmp.remove();
  });
  try {
    const [template] = await rig.knocks(1);
    const rows: Row[] = [];
    rows.push(await scenario(rig, 'no flood', flooder, null));
    rows.push(await scenario(rig, 'random UDP', flooder, ''));
    rows.push(await scenario(rig, 'key id + garbage', flooder, template as string));
    if (flooder) {
      rows.push(await scenario(rig, 'key id + garbage, spoofed sources', flooder, template as string, true));
    }
    console.log(
      `spa flood benchmark: pcap, nftables, default rate limits; flood ≤ ${SECONDS} s and ≤ ${MAX_PACKETS.toLocaleString('en')} packets from one ${
        flooder ? 'C sendmmsg sender (one core)' : 'Node sender (gcc not found)'
      }; ${KNOCKS} knocks 300 ms apart; ${new Date().toISOString()}`,
    );
    console.table(rows);
  } finally {
    await cleanup();
  }
}

await main();
