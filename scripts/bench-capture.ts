/**
 * Capture delivery latency: time from the client's send() to the server's onDatagram call, for
 * libpcap on eth0, libpcap on `any`, and the UDP socket, over IPv4 and IPv6, in a throw-away
 * namespace topology (scripts/netns.ts). Both ends read CLOCK_MONOTONIC (process.hrtime), which
 * all namespaces share: the sender stamps each payload, the harness stamps reception.
 * In pcap runs the server namespace drops the SPA port in nftables, as in production.
 *
 * Usage (root): npm run build && node dist/scripts/bench-capture.js [--count 50] [--interval-ms 10]
 *   [--decoy-libpcap]   pcap rows only, with LD_LIBRARY_PATH pointing at a directory whose
 *                       libpcap.so is not loadable: `cap`'s dlopen("libpcap.so") (how it finds
 *                       pcap_set_immediate_mode) then fails, as on a host without the libpcap
 *                       dev symlink. On glibc its dlsym(NULL, ...) fallback still finds the
 *                       function. Add LD_PRELOAD of a library defining a no-op
 *                       pcap_set_immediate_mode to see delivery without immediate mode.
 * Prints figures; asserts nothing.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type DatagramEvent,
  dropUdpPort,
  sendFrom,
  startHarness,
} from '../test/e2e/fixtures/capture-control.js';
import { tempDir } from './cleanup.js';
import { createTopology, netnsUnavailable } from './netns.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '50' },
    'interval-ms': { type: 'string', default: '10' },
    'decoy-libpcap': { type: 'boolean', default: false },
  },
});
const count = Math.min(1000, Math.max(1, Number(values.count)));
const intervalMs = Math.min(1000, Math.max(1, Number(values['interval-ms'])));

const why = await netnsUnavailable();
if (why) {
  console.error(`bench-capture: ${why}`);
  process.exit(1);
}

interface Scenario {
  name: string;
  args: string[];
  port: number;
  env?: NodeJS.ProcessEnv;
}
const PCAP_PORT = 62201;
const UDP_PORT = 62202;
const pcapArgs = (device: string, ...more: string[]): string[] => [
  '--mode',
  'pcap',
  '--device',
  device,
  '--port',
  String(PCAP_PORT),
  ...more,
];
const scenarios: Scenario[] = [
  { name: 'pcap eth0 (isolated)', args: pcapArgs('eth0'), port: PCAP_PORT },
  { name: 'pcap any (isolated)', args: pcapArgs('any'), port: PCAP_PORT },
  { name: 'pcap eth0 (in-process)', args: pcapArgs('eth0', '--in-process'), port: PCAP_PORT },
  { name: 'pcap any (in-process)', args: pcapArgs('any', '--in-process'), port: PCAP_PORT },
  { name: 'udp socket', args: ['--mode', 'udp', '--port', String(UDP_PORT)], port: UDP_PORT },
];
let decoy: ReturnType<typeof tempDir> | undefined;
if (values['decoy-libpcap']) {
  decoy = tempDir('spa-decoy-');
  const decoyDir = decoy.path;
  writeFileSync(join(decoyDir, 'libpcap.so'), 'not an ELF file\n');
  const env = { ...process.env, LD_LIBRARY_PATH: decoyDir };
  scenarios.splice(
    0,
    scenarios.length,
    ...scenarios
      .filter((s) => s.name.startsWith('pcap'))
      .map((s) => ({ ...s, name: `${s.name} (decoy libpcap.so)`, env })),
  );
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

const fmt = (ms: number): string => (Number.isNaN(ms) ? '-' : `${ms.toFixed(3)} ms`);

const topo = await createTopology();
try {
  await dropUdpPort(topo.server, 'spa_bench_capture', PCAP_PORT);
  console.log(`capture latency, send() -> onDatagram, ${count} datagrams per row, ${intervalMs} ms apart`);
  console.log(
    ['scenario'.padEnd(32), 'family', 'received', 'median', 'p90', 'max', 'seen->delivered median'].join(
      '\t',
    ),
  );
  for (const s of scenarios) {
    for (const family of [4, 6] as const) {
      const h = startHarness(topo.server, s.args, s.env);
      try {
        const started = await h.waitFor((e) => e.event === 'started' || e.event === 'error', 10_000);
        if (started?.event !== 'started') {
          console.log(`${s.name}: harness did not start: ${JSON.stringify(started)} ${h.stderr()}`);
          continue;
        }
        const to = family === 4 ? topo.server.ipv4 : topo.server.ipv6;
        const sent = await sendFrom(topo.client, { to, port: s.port, count, intervalMs, stamp: true });
        // Stragglers: wait until all arrived, at most 3 s (more than any pcap timeout).
        await h.waitFor(() => h.datagrams().length >= sent, 3000);
        const ms = (a: bigint, b: bigint): number => Number(a - b) / 1e6;
        const sentAt = (d: DatagramEvent): bigint =>
          BigInt(Buffer.from(d.payloadHex, 'hex').toString().slice(2));
        const got = h.datagrams();
        const lat = got.map((d) => ms(BigInt(d.deliveredAt), sentAt(d))).sort((a, b) => a - b);
        // receivedAt is stamped where the frame was read (the child, when isolated): the
        // difference is the pipe hop plus decoding.
        const hop = got.map((d) => ms(BigInt(d.deliveredAt), BigInt(d.receivedAt))).sort((a, b) => a - b);
        console.log(
          [
            s.name.padEnd(32),
            `IPv${family}`,
            `${lat.length}/${sent}`,
            fmt(quantile(lat, 0.5)),
            fmt(quantile(lat, 0.9)),
            fmt(quantile(lat, 1)),
            fmt(quantile(hop, 0.5)),
          ].join('\t'),
        );
      } finally {
        await h.close();
      }
    }
  }
} finally {
  await topo.destroy();
  await decoy?.remove();
}
