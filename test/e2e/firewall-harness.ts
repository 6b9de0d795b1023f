/**
 * E2E helpers for the firewall tests: real TCP/UDP echo services in the server namespace and
 * short-lived probes from the client or attacker namespace, all small node one-liners (no extra
 * packages). Every probe is one connection attempt or one datagram, bounded by a timeout.
 *
 *   <id>-client 198.51.100.2 / 2001:db8::2 ──┐
 *   <id>-attacker 198.51.100.3 / 2001:db8::3 ─┼── bridge ── <id>-server 198.51.100.1 / 2001:db8::1
 *                                            │               firewall under test + echo services
 */
import type { ChildProcess } from 'node:child_process';
import { createTopology, type Host, type Topology } from '../../scripts/netns.js';

const NODE = process.execPath;

const SERVICES = `
const net = require('net'), dgram = require('dgram');
const tcp = process.argv[1].split(',').filter(Boolean).map(Number);
const udp = process.argv[2].split(',').filter(Boolean).map(Number);
let up = 0; const total = tcp.length + 2 * udp.length;
const ready = () => { if (++up === total) console.log('ready'); };
for (const p of tcp) net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen({ port: p, host: '::' }, ready);
for (const p of udp) for (const type of ['udp4', 'udp6']) {
  const d = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
  d.on('message', (m, r) => d.send(m, r.port, r.address));
  d.bind(p, type === 'udp4' ? '0.0.0.0' : '::', ready);
}`;

const PROBE = `
const net = require('net'), dgram = require('dgram');
const ms = Number(process.argv[1]);
const one = (spec) => new Promise((resolve) => {
  const [proto, host, port] = spec.split('|');
  let s;
  const done = (r) => { clearTimeout(t); try { s.close ? s.close() : s.destroy(); } catch {} resolve(r); };
  const t = setTimeout(() => done('closed'), ms);
  if (proto === 'tcp') {
    s = net.connect({ host, port: Number(port) });
    s.on('connect', () => done('open'));
    s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'error:' + e.code));
  } else {
    s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    s.on('message', () => done('open'));
    s.on('error', (e) => done('error:' + e.code));
    s.send('knock-probe', Number(port), host);
  }
});
Promise.all(process.argv.slice(2).map(one)).then((r) => console.log(JSON.stringify(r)));`;

const SESSION = `
const net = require('net');
const s = net.connect({ host: process.argv[1], port: Number(process.argv[2]) }, () => console.log('connected'));
s.on('error', (e) => { console.log('error ' + e.code); process.exit(1); });
s.on('close', () => process.exit(0));
s.setEncoding('utf8'); s.on('data', (d) => process.stdout.write(d));
process.stdin.setEncoding('utf8'); process.stdin.on('data', (d) => s.write(d));`;

export type ProbeResult = 'open' | 'closed' | 'refused' | string;
export type Target = [proto: 'tcp' | 'udp', address: string, port: number];

/** Tries every target once, in parallel, from `from`; 'closed' means no answer within `ms`. */
export async function probe(from: Host, targets: readonly Target[], ms = 700): Promise<ProbeResult[]> {
  const args = ['-e', PROBE, String(ms), ...targets.map((t) => t.join('|'))];
  const r = await from.exec(NODE, args, { timeoutMs: ms + 10_000 });
  if (r.code !== 0) throw new Error(`probe failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as ProbeResult[];
}

export async function probeOne(from: Host, target: Target, ms = 700): Promise<ProbeResult> {
  return (await probe(from, [target], ms))[0] ?? 'none';
}

function waitLine(child: ChildProcess, want: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for '${want}', got '${buf.slice(-200)}'`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (buf.includes(want)) {
        cleanup();
        resolve();
      }
    };
    const onExit = () => {
      cleanup();
      reject(new Error(`process exited before '${want}': '${buf.slice(-200)}'`));
    };
    const cleanup = () => {
      clearTimeout(t);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.on('exit', onExit);
  });
}

/** Echo services on every address of the server namespace. */
export async function startServices(
  host: Host,
  tcp: readonly number[],
  udp: readonly number[],
): Promise<ChildProcess> {
  const child = host.spawn(NODE, ['-e', SERVICES, tcp.join(','), udp.join(',')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await waitLine(child, 'ready', 10_000);
  return child;
}

export interface Session {
  /** Sends a line and resolves true when it comes back within `ms`. */
  echo(text: string, ms?: number): Promise<boolean>;
  close(): void;
}

/** A long-lived TCP connection from `from`, used to show that live sessions outlast a window. */
export async function openSession(from: Host, address: string, port: number): Promise<Session> {
  const child = from.spawn(NODE, ['-e', SESSION, address, String(port)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    await waitLine(child, 'connected', 5000);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    async echo(text, ms = 3000) {
      const seen = waitLine(child, text, ms).then(
        () => true,
        () => false,
      );
      child.stdin?.write(`${text}\n`);
      return seen;
    },
    close() {
      child.kill('SIGKILL');
    },
  };
}

/** Runs `fn` with a fresh topology and kills every process it registered, even on failure. */
export async function withTopology(
  fn: (topo: Topology, track: (c: ChildProcess | Session) => void) => Promise<void>,
): Promise<void> {
  const topo = await createTopology();
  const tracked: (ChildProcess | Session)[] = [];
  try {
    await fn(topo, (c) => tracked.push(c));
  } finally {
    for (const c of tracked) {
      if ('echo' in c) c.close();
      else c.kill('SIGKILL');
    }
    await topo.destroy();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
