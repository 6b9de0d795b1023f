/**
 * Knock benchmark (docs/benchmarks.md), in throw-away network namespaces with the real spad:
 *  - knock-to-open latency: the client namespace sends a knock and times until a TCP connect to
 *    the protected port succeeds; the grant is flushed between knocks. Median and p90.
 *  - throughput: two bursts of valid knocks (distinct nonces) sent as fast as one process can,
 *    the first right after the latency knocks ("cold": V8 is still compiling openpgp.js and
 *    ours), the second after it ("warm": a daemon that has been up a while); per burst, valid
 *    knocks per second = knocks granted / (last grant − first send), and spad's CPU time per
 *    knock from /proc (utime + stime of every process under the daemon: with privilege
 *    separation the monitor, the verifier, the capture process and the nft shell, plus what they
 *    reaped), also by process on stderr (bench-lib.ts spadBurst).
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
import { type KnockFigures, pct, saveFigures, sealKnocks, spadBurst, startProbe } from './bench-lib.js';
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

    // throughput and CPU: a first burst right after start-up (cold: V8 still compiling), then a
    // second one (warm: how a daemon that has been up a while spends its time)
    const cold = await spadBurst(
      spad,
      topo.client,
      topo.server.ipv4,
      await knocks(keys, home, topo.client.ipv4, BURST),
    );
    await callControl(sock, 'fw-flush');
    const warm = await spadBurst(
      spad,
      topo.client,
      topo.server.ipv4,
      await knocks(keys, home, topo.client.ipv4, BURST),
    );
    console.error(
      `${mode}: capture stats ${JSON.stringify(((await callControl(sock, 'status')) as { captureStats: unknown }).captureStats)}`,
    );
    const perProcess = Object.entries(warm.cpuByProcess)
      .map(([name, ms]) => `${name} ${ms.toFixed(2)}`)
      .join(', ');
    const drops = [...new Set([...cold.drops, ...warm.drops])];
    const row = {
      mode,
      'knock→open median ms': pct(ok, 50).toFixed(1),
      'p90 ms': pct(ok, 90).toFixed(1),
      'lost knocks': String(results.length - ok.length),
      'server recv→grant median ms': pct(serverMs, 50).toFixed(2),
      'valid knocks/s cold': cold.rate.toFixed(0),
      warm: warm.rate.toFixed(0),
      'cpu ms/knock cold': cold.cpuMs.toFixed(2),
      'warm ': warm.cpuMs.toFixed(2),
      'burst granted': `${cold.granted + warm.granted}/${2 * BURST}${drops.length ? ` (drops: ${drops.join(',')})` : ''}`,
    };
    console.error(`${mode}: warm cpu ms/knock by process: ${perProcess}`);
    const rate = warm.rate;
    const cpuPerKnock = warm.cpuMs;
    return {
      row,
      raw: {
        mode,
        ms: results,
        rate,
        cpuMs: cpuPerKnock,
        cold: { rate: cold.rate, cpuMs: cold.cpuMs },
        cpuByProcess: warm.cpuByProcess,
      },
    };
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
