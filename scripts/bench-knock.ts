/**
 * Knock benchmark (docs/benchmarks.md), in throw-away network namespaces with the real spad:
 *  - knock-to-open latency: the client namespace sends a knock and times until a TCP connect to
 *    the protected port succeeds; the grant is flushed between knocks. Median and p90.
 *  - throughput: a burst of valid knocks (distinct nonces) sent as fast as one process can;
 *    valid knocks per second = knocks granted / (last grant − first send), and spad's CPU time
 *    per knock from /proc (utime + stime of the daemon and its child processes: with privilege
 *    separation, the monitor, the verifier and the capture process, plus the children it reaped,
 *    like nft).
 * With $SPA_BENCH_DATA set, also writes the raw figures there as knock.json (bench-plot.ts).
 * Usage: node dist/scripts/bench-knock.js [--knocks 40] [--burst 300] [--mode pcap|udp|both]
 *        [--firewall nftables|iptables]
 * Needs root. Cleans up its namespaces, processes and temp files even when it fails, and on
 * SIGINT/SIGTERM/SIGHUP (scripts/cleanup.ts).
 */
import { parseArgs } from 'node:util';
import { callControl } from '../server/control.js';
import { startServices } from '../test/e2e/firewall-harness.js';
import { type Keys, type Spad, setupKeys, startSpad } from '../test/e2e/spad-harness.js';
import {
  BLAST,
  childPids,
  cpuMs,
  type KnockFigures,
  startProbe,
  pct,
  saveFigures,
  sealKnocks,
} from './bench-lib.js';
import { onInterrupt } from './cleanup.js';
import { createTopology, type Topology } from './netns.js';

const { values } = parseArgs({
  options: {
    knocks: { type: 'string', default: '40' },
    burst: { type: 'string', default: '300' },
    mode: { type: 'string', default: 'both' },
    firewall: { type: 'string', default: 'nftables' },
  },
});
const KNOCKS = Math.min(500, Number(values.knocks));
const BURST = Math.min(2000, Number(values.burst));
const NODE = process.execPath;

function knocks(keys: Keys, home: string, source: string, n: number): Promise<string[]> {
  return sealKnocks(home, n, { user: 'alice', source, serverFingerprint: keys.serverFingerprint });
}

async function runMode(
  topo: Topology,
  keys: Keys,
  home: string,
  mode: 'pcap' | 'udp',
): Promise<{ row: Record<string, string>; raw: KnockFigures['modes'][number] }> {
  const capture = mode === 'pcap' ? ['--interface', 'eth0'] : ['--udp-server'];
  const cfg = `${keys.dir}/bench.json`;
  (await import('node:fs')).writeFileSync(cfg, JSON.stringify({ rate_burst: 5000, rate_per_second: 5000 }));
  const spad: Spad = await startSpad(topo.server, keys.stateDir, [
    ...capture,
    '--protect',
    'tcp/22',
    '--firewall',
    String(values.firewall),
    '--config',
    cfg,
  ]);
  const sock = `${keys.stateDir}/spad.sock`;
  try {
    // latency
    const pkts = await knocks(keys, home, topo.client.ipv4, KNOCKS);
    const probe = startProbe(topo.client, topo.server.ipv4);
    const results: Array<number | null> = [];
    const grantMark = spad.lines.length;
    for (const p of pkts) {
      results.push(await probe.measure(p));
      await callControl(sock, 'fw-flush');
    }
    probe.close();
    const ok = results.filter((x): x is number => x !== null);
    const serverMs = spad.lines
      .slice(grantMark)
      .filter((l) => l.event === 'grant')
      .map((l) => Number(l.ms));

    // throughput and CPU
    const burst = await knocks(keys, home, topo.client.ipv4, BURST);
    const mark = spad.lines.length;
    // every spad process: the daemon (monitor), its children (verifier, capture process) and
    // the ones it reaped (nft)
    const pid = spad.proc.pid as number;
    const cpuAll = (): number => cpuMs(pid, true) + childPids(pid).reduce((sum, p) => sum + cpuMs(p), 0);
    const cpu0 = cpuAll();
    const t0 = Date.now();
    const blast = await topo.client.exec(NODE, ['-e', BLAST, topo.server.ipv4], {
      input: `${burst.join('\n')}\n`,
      timeoutMs: 60_000,
    });
    if (blast.code !== 0) throw new Error(`blast failed: ${blast.stderr}`);
    const deadline = Date.now() + 60_000;
    while (
      Date.now() < deadline &&
      spad.lines.slice(mark).filter((l) => l.event === 'grant' || l.event === 'drop').length < BURST
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const t1 = Date.now();
    const cpu1 = cpuAll();
    const after = spad.lines.slice(mark);
    console.error(
      `${mode}: capture stats ${JSON.stringify(((await callControl(sock, 'status')) as { captureStats: unknown }).captureStats)}`,
    );
    const granted = after.filter((l) => l.event === 'grant').length;
    const drops = after.filter((l) => l.event === 'drop').map((l) => l.reason);
    const rate = (granted * 1000) / (t1 - t0);
    const cpuPerKnock = (cpu1 - cpu0) / Math.max(1, granted);
    const row = {
      mode,
      'knock→open median ms': pct(ok, 50).toFixed(1),
      'p90 ms': pct(ok, 90).toFixed(1),
      'lost knocks': String(results.length - ok.length),
      'server recv→grant median ms': pct(serverMs, 50).toFixed(2),
      'valid knocks/s': rate.toFixed(0),
      'cpu ms/knock (spad + children)': cpuPerKnock.toFixed(2),
      'burst granted': `${granted}/${BURST}${drops.length ? ` (drops: ${[...new Set(drops)].join(',')})` : ''}`,
    };
    return { row, raw: { mode, ms: results, rate, cpuMs: cpuPerKnock } };
  } finally {
    await spad.stop();
  }
}

async function main(): Promise<void> {
  const topo = await createTopology();
  const keys = await setupKeys();
  const service = await startServices(topo.server, [22], []);
  const cleanup = onInterrupt(async () => {
    service.kill('SIGKILL');
    await topo.destroy();
    keys.cleanup();
  });
  try {
    const alice = await keys.enroll('alice', ['--open', 'tcp/22', '--timeout', '30']);
    const modes: Array<'pcap' | 'udp'> =
      values.mode === 'both' ? ['pcap', 'udp'] : [values.mode as 'pcap' | 'udp'];
    const rows = [];
    const raw: KnockFigures['modes'][number][] = [];
    for (const m of modes) {
      const r = await runMode(topo, keys, alice.home, m);
      rows.push(r.row);
      raw.push(r.raw);
    }
    saveFigures('knock', { modes: raw } satisfies KnockFigures);
    console.log(
      `spa knock benchmark: ${KNOCKS} knocks for latency, ${BURST} for throughput, ${values.firewall}, ${new Date().toISOString()}`,
    );
    console.table(rows);
  } finally {
    await cleanup();
  }
}

await main();
