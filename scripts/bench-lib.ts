/**
 * Pieces shared by the benchmarks (bench-knock, bench-flood, bench-keys, bench-fwknop) and the
 * flood and fault e2e tests: sealing knocks from a user's keystore, sending a batch of datagrams
 * from a namespace, the knock-to-open probe, and reading a process's CPU time and peak memory
 * from /proc. Nothing here sends anything unbounded: batches are lists, the probe stops after
 * 2 s per knock.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
rl.on('close', async () => { const t0 = process.hrtime.bigint();
  for (const p of pk) await new Promise((r) => s.send(p, port, to, r));
  console.log(JSON.stringify({ sent: pk.length, ms: Number(process.hrtime.bigint() - t0) / 1e6 })); s.close(); });`;

/** Sends these datagrams (hex) from `from` to `to`, one after the other, as fast as one process can. */
export async function blast(
  from: Host,
  to: string,
  hex: readonly string[],
  port = 62201,
): Promise<{ sent: number; ms: number }> {
  const r = await from.exec(NODE, ['-e', BLAST, to, String(port)], {
    input: `${hex.join('\n')}\n`,
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`blast failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { sent: number; ms: number };
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
