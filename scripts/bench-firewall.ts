/**
 * Firewall backend latency: how long `grant()` takes, per backend, measured inside a throw-away
 * network namespace so the host's ruleset is never touched. The measuring process itself runs in
 * the namespace (it re-executes itself under `ip netns exec`), so the figures are what spad sees
 * in production, with no namespace-entry cost per command. Three transports: nftables with one
 * `nft -f -` process per change, nftables through one long-lived `nft -i` (the default), and
 * iptables (list + iptables-restore per change).
 *
 * Rows: grant of 1 port to a new source, grant of 3 ports, re-grant of an existing element,
 * list() and healthy() with 150 grants present, sweep() with nothing expired (iptables; nftables
 * does nothing).
 *
 * Usage (root): npm run build && node dist/scripts/bench-firewall.js [--count 50]
 * Prints figures; asserts nothing. Removes the namespace on exit, also on failure.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import {
  type FirewallExec,
  createFirewall,
  execRunner,
  type Firewall,
  type FirewallKind,
  nftShellRunner,
  type PortSpec,
} from '../server/firewall/index.js';
import { netnsUnavailable, run } from './netns.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '50' },
    inner: { type: 'string' },
  },
});
const count = Math.min(200, Math.max(5, Number(values.count) || 50));
const PROTECT: PortSpec[] = [
  { proto: 'tcp', port: 22 },
  { proto: 'tcp', port: 443 },
  { proto: 'udp', port: 51820 },
];

interface Row {
  what: string;
  median: number;
  p90: number;
  n: number;
}

function stats(what: string, ms: number[]): Row {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { what, median: at(0.5), p90: at(0.9), n: s.length };
}

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return out;
}

/** Sources 198.51.100.10+ and 2001:db8::a+ (documentation ranges). */
const src = (i: number) =>
  i % 2 === 0 ? `198.51.100.${10 + (i % 240)}` : `2001:db8::${(10 + i).toString(16)}`;

async function measure(fw: Firewall, label: string): Promise<Row[]> {
  const rows: Row[] = [];
  const t0 = process.hrtime.bigint();
  await fw.init();
  rows.push({
    what: `${label} init()`,
    median: Number(process.hrtime.bigint() - t0) / 1e6,
    p90: Number.NaN,
    n: 1,
  });
  const [ssh] = PROTECT as [PortSpec];
  rows.push(
    stats(
      `${label} grant 1 port`,
      await timed(count, (i) => fw.grant({ source: src(i), ports: [ssh], timeoutSeconds: 300 })),
    ),
  );
  rows.push(
    stats(
      `${label} grant 3 ports`,
      await timed(count, (i) => fw.grant({ source: src(i + 1000), ports: PROTECT, timeoutSeconds: 300 })),
    ),
  );
  rows.push(
    stats(
      `${label} re-grant`,
      await timed(count, (i) => fw.grant({ source: src(i), ports: [ssh], timeoutSeconds: 600 })),
    ),
  );
  rows.push(stats(`${label} list()`, await timed(10, () => fw.list())));
  rows.push(stats(`${label} healthy()`, await timed(10, () => fw.healthy())));
  rows.push(stats(`${label} sweep()`, await timed(10, () => fw.sweep(Date.now()))));
  await fw.shutdown({ removeProtections: true });
  return rows;
}

const TRANSPORTS = {
  'nft-spawn': ['nftables', () => execRunner(), 'nftables, nft -f - per change'],
  'nft-shell': ['nftables', () => nftShellRunner(), 'nftables, one nft -i'],
  iptables: ['iptables', () => execRunner(), 'iptables'],
} as const satisfies Record<string, readonly [FirewallKind, () => FirewallExec, string]>;
type Transport = keyof typeof TRANSPORTS;

async function inner(t: Transport): Promise<void> {
  const [kind, runner, label] = TRANSPORTS[t];
  const fw = createFirewall(kind, { protect: PROTECT, alwaysAllow: [], name: 'bench' }, runner());
  console.log(JSON.stringify(await measure(fw, label)));
}

function print(rows: Row[]): void {
  const f = (v: number | null) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(2) : '');
  console.log(
    `${'operation'.padEnd(44)} ${'median ms'.padStart(10)} ${'p90 ms'.padStart(8)} ${'n'.padStart(4)}`,
  );
  for (const r of rows)
    console.log(
      `${r.what.padEnd(44)} ${f(r.median).padStart(10)} ${f(r.p90).padStart(8)} ${String(r.n).padStart(4)}`,
    );
}

async function main(): Promise<void> {
  if (values.inner !== undefined) {
    if (!(values.inner in TRANSPORTS)) throw new Error(`unknown transport ${values.inner}`);
    return inner(values.inner as Transport);
  }
  const why = await netnsUnavailable();
  if (why) {
    console.error(`bench-firewall: skipped: ${why}`);
    process.exitCode = 2;
    return;
  }
  const ns = `spabench${randomBytes(3).toString('hex')}`;
  const add = await run('ip', ['netns', 'add', ns]);
  if (add.code !== 0) throw new Error(`ip netns add: ${add.stderr.trim()}`);
  const rows: Row[] = [];
  try {
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const versions = await Promise.all(
      ['nft', 'iptables'].map(async (b) => (await run(b, ['--version'])).stdout.trim()),
    );
    console.log(`${versions.join('; ')}; node ${process.version}; ${count} calls per row`);
    for (const t of Object.keys(TRANSPORTS)) {
      const child = spawn(
        'ip',
        [
          'netns',
          'exec',
          ns,
          process.execPath,
          process.argv[1] ?? '',
          '--inner',
          t,
          '--count',
          String(count),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const code = await new Promise<number | null>((r) => child.on('exit', r));
      if (code !== 0) throw new Error(`inner ${t} run failed (${code})`);
      rows.push(...(JSON.parse(out) as Row[]));
    }
    const nsEntry = await timed(20, () => run('ip', ['netns', 'exec', ns, 'true']));
    rows.push(stats('(spawn cost: `ip netns exec NS true`)', nsEntry));
    const load = await run('cat', ['/proc/loadavg']);
    console.log(`load average: ${load.stdout.trim()}`);
  } finally {
    await run('ip', ['netns', 'delete', ns]);
  }
  print(rows);
}

await main();
