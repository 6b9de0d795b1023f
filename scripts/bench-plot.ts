/**
 * Draws the benchmark results as SVG pictures, so that a reader can look instead of reading the
 * tables: reads the raw figures the benchmarks saved (bench-lib.ts saveFigures: knock.json,
 * fwknop.json, flood.json in DIR/data) and writes, into DIR, each picture whose figures exist:
 *   knock-to-open.svg     knock-to-open of every knock, spa and fwknop, pcap and UDP socket
 *   throughput-cpu.svg    valid knocks per second in a burst, and server CPU ms per valid knock
 *   flood.svg             knock-to-open of the valid knocks under each flood (lost ones counted)
 *   client.svg            client wall time of each real send: spa, fwknop, and a bare node
 * Charts are Vega-Lite specs compiled to Vega and rendered to SVG in Node (no browser, no canvas).
 * Prints the path of each picture written.
 *
 * Usage: node dist/scripts/bench-plot.js DIR      (scripts/bench.sh runs it on its output folder)
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { FloodFigures, FwknopFigures, KnockFigures } from './bench-lib.js';

const WIDTH = 560;
const COLORS = { domain: ['spa', 'fwknop', 'node -e 0'], range: ['#1f77b4', '#d62728', '#7f7f7f'] };

function readJson<T>(dir: string, name: string): T | null {
  const file = join(dir, 'data', `${name}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : null;
}

async function render(spec: TopLevelSpec): Promise<string> {
  const full = {
    ...spec,
    background: 'white',
    config: { axisY: { labelLimit: 640 }, ...spec.config },
  } as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(full).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

interface Point {
  readonly series: string;
  readonly system: string;
  readonly ms: number;
}

/** One row per series: every value as a tick, a box over them, on a log axis of milliseconds. */
function distribution(
  title: string,
  xTitle: string,
  points: readonly Point[],
  order: string[],
): TopLevelSpec {
  const y = { field: 'series', type: 'nominal' as const, title: null, sort: order };
  const x = { field: 'ms', type: 'quantitative' as const, title: xTitle, scale: { type: 'log' as const } };
  const color = { field: 'system', type: 'nominal' as const, scale: COLORS, legend: null };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: WIDTH,
    height: { step: 30 },
    data: { values: points as Point[] },
    layer: [
      {
        mark: { type: 'boxplot', extent: 'min-max', opacity: 0.35, size: 18 },
        encoding: { y, x, color },
      },
      { mark: { type: 'tick', thickness: 1.5, size: 16 }, encoding: { y, x, color } },
    ],
  };
}

const valid = (xs: ReadonlyArray<number | null>): number[] =>
  xs.filter((x): x is number => x !== null && Number.isFinite(x) && x > 0);

function label(name: string, xs: ReadonlyArray<number | null>): string {
  const lost = xs.length - valid(xs).length;
  return lost > 0 ? `${name} (${lost}/${xs.length} lost)` : name;
}

async function knockToOpen(fw: FwknopFigures): Promise<string> {
  const points: Point[] = [];
  const order: string[] = [];
  for (const system of ['spa', 'fwknop'] as const) {
    for (const mode of ['pcap', 'udp'] as const) {
      const xs = fw[system].latency[mode];
      const series = label(`${system}, ${mode === 'pcap' ? 'pcap' : 'UDP socket'}`, xs);
      order.push(series);
      for (const ms of valid(xs)) points.push({ series, system, ms });
    }
  }
  return render(distribution('Knock to open, every knock (bench-fwknop)', 'ms (log scale)', points, order));
}

async function throughputCpu(fw: FwknopFigures | null, kn: KnockFigures | null): Promise<string> {
  const rows: Array<{ series: string; system: string; rate: number; cpu: number }> = [];
  for (const m of kn?.modes ?? []) {
    rows.push({
      series: `spa, ${m.mode === 'pcap' ? 'pcap' : 'UDP socket'} (bench-knock)`,
      system: 'spa',
      rate: m.rate,
      cpu: m.cpuMs,
    });
  }
  if (fw) {
    rows.push({ series: 'spa, pcap (bench-fwknop)', system: 'spa', rate: fw.spa.rate, cpu: fw.spa.cpuMs });
    rows.push({
      series: 'fwknop, pcap (bench-fwknop)',
      system: 'fwknop',
      rate: fw.fwknop.rate,
      cpu: fw.fwknop.cpuMs,
    });
  }
  const y = { field: 'series', type: 'nominal' as const, title: null, sort: rows.map((r) => r.series) };
  const color = { field: 'system', type: 'nominal' as const, scale: COLORS, legend: null };
  const bars = (field: 'rate' | 'cpu', title: string) => ({
    width: WIDTH / 2 - 40,
    height: { step: 26 },
    layer: [
      {
        mark: { type: 'bar' as const },
        encoding: { y, color, x: { field, type: 'quantitative' as const, title } },
      },
      {
        mark: { type: 'text' as const, align: 'left' as const, dx: 3 },
        encoding: {
          y,
          x: { field, type: 'quantitative' as const },
          text: { field, type: 'quantitative' as const, format: field === 'rate' ? '.0f' : '.2f' },
        },
      },
    ],
  });
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Valid knocks per second in a burst, and server CPU per valid knock',
    data: { values: rows },
    hconcat: [
      bars('rate', 'valid knocks / s (higher is better)'),
      bars('cpu', 'CPU ms per valid knock (lower is better)'),
    ],
  });
}

async function flood(fl: FloodFigures): Promise<string> {
  const points: Point[] = [];
  const order: string[] = [];
  for (const s of fl.scenarios) {
    // scenarios at a set rate name it already ("…, 100/s")
    const rate = s.pps === null || s.name.endsWith('/s') ? '' : `, ${s.pps.toLocaleString('en')} pps`;
    const series = label(`${s.name}${rate}`, s.ms);
    order.push(series);
    for (const ms of valid(s.ms)) points.push({ series, system: 'spa', ms });
  }
  return render(
    distribution(
      'Knock to open of valid knocks under each flood (bench-flood)',
      'ms (log scale)',
      points,
      order,
    ),
  );
}

async function client(fw: FwknopFigures): Promise<string> {
  const points: Point[] = [];
  const series = [
    ['spa', 'spa -A tcp/22 HOST (real send)', fw.spa.client],
    ['fwknop', 'fwknop -A tcp/22 ... (real send)', fw.fwknop.client],
    ['node -e 0', 'node -e 0 (floor of a Node client)', fw.node],
  ] as const;
  for (const [system, name, xs] of series)
    for (const ms of valid(xs)) points.push({ series: name, system, ms });
  return render(
    distribution(
      'Client wall time, exec to exit (bench-fwknop)',
      'ms (log scale)',
      points,
      series.map((s) => s[1]),
    ),
  );
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: node dist/scripts/bench-plot.js DIR');
  const fw = readJson<FwknopFigures>(dir, 'fwknop');
  const kn = readJson<KnockFigures>(dir, 'knock');
  const fl = readJson<FloodFigures>(dir, 'flood');
  const pictures: Array<[string, () => Promise<string>]> = [];
  if (fw) pictures.push(['knock-to-open.svg', () => knockToOpen(fw)]);
  if (fw || kn) pictures.push(['throughput-cpu.svg', () => throughputCpu(fw, kn)]);
  if (fl) pictures.push(['flood.svg', () => flood(fl)]);
  if (fw) pictures.push(['client.svg', () => client(fw)]);
  if (pictures.length === 0) console.log(`bench-plot: no figures in ${join(dir, 'data')}; no picture drawn`);
  for (const [name, draw] of pictures) {
    const file = join(dir, name);
    writeFileSync(file, await draw());
    console.log(`bench-plot: ${file}`);
  }
}

await main();
