/**
 * Firewall backend latency: how long `grant()` takes, per backend, measured inside a throw-away
 * network namespace so the host's ruleset is never touched. The measuring process itself runs in
 * the namespace (it re-executes itself under `ip netns exec`), so the figures are what spad sees
 * in production: one nft / iptables process per call, no namespace-entry cost per command. A
 * second row per backend shows the cost with a per-command `ip netns exec` prefix, as the e2e
 * tests run it.
 *
 * Rows: grant of 1 port to a new source, grant of 3 ports, re-grant of an existing element,
 * list() with 150 grants present, sweep() with nothing expired (iptables; nftables does nothing).
 *
 * Usage (root): npm run build && node dist/scripts/bench-firewall.js [--count 50]
 * Prints figures; asserts nothing. Removes the namespace on exit, also on failure.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import {
  createFirewall,
  execRunner,
  type Firewall,
  type FirewallKind,
  type PortSpec,
} from '../server/firewall/index.js';
import { netnsUnavailable, run } from './netns.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '50' },
    inner: { type: 'string' },
    netns: { type: 'string' },
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
  rows.push(stats(`${label} sweep()`, await timed(10, () => fw.sweep(Date.now()))));
  await fw.shutdown({ removeProtections: true });
  return rows;
}

async function inner(kind: FirewallKind): Promise<void> {
  const fw = createFirewall(kind, { protect: PROTECT, alwaysAllow: [], name: 'bench' }, execRunner());
  console.log(JSON.stringify(await measure(fw, `${kind} (in netns)`)));
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
  if (values.inner === 'nftables' || values.inner === 'iptables') return inner(values.inner);
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
    for (const kind of ['nftables', 'iptables'] as const) {
      const child = spawn(
        'ip',
        [
          'netns',
          'exec',
          ns,
          process.execPath,
          process.argv[1] ?? '',
          '--inner',
          kind,
          '--count',
          String(count),
        ],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const code = await new Promise<number | null>((r) => child.on('exit', r));
      if (code !== 0) throw new Error(`inner ${kind} run failed (${code})`);
      rows.push(...(JSON.parse(out) as Row[]));
      const prefixed = createFirewall(
        kind,
        { protect: PROTECT, alwaysAllow: [], name: 'bench' },
        execRunner({ netns: ns }),
      );
      rows.push(...(await measure(prefixed, `${kind} (ip netns exec per cmd)`)));
    }
    const nsEntry = await timed(20, () => run('ip', ['netns', 'exec', ns, 'true']));
    rows.push(stats('`ip netns exec NS true` alone', nsEntry));
  } finally {
    await run('ip', ['netns', 'delete', ns]);
  }
  print(rows);
}

await main();
