/**
 * Client wall time, one knock, whole process (target: median <= 300 ms, goal 120 ms, issue #15;
 * docs/benchmarks.md "Targets").
 *
 *   node dist/scripts/bench-client.js [--n 20] [--mode send|test|both] [--gpg]
 *
 * Makes a throwaway client home (own Curve25519 key + a server key), starts a UDP listener on
 * 127.0.0.1, then runs `node dist/client/cli.js` N times per mode, sequentially, and prints the
 * median and p90 of the wall time of each run (spawn to exit), next to a bare `node -e 0` for
 * the machine's floor, and the mean CPU time (user + sys) of the runs of each line, which a shared
 * machine disturbs far less than wall time (read from this process's cutime/cstime in /proc, which
 * grow by each reaped child's CPU; 10 ms ticks, so only the mean over many runs is meaningful).
 * In send mode it also checks that every run's datagram arrived. The default keys are sealed with
 * node:crypto (protocol/native-seal.ts); with --gpg the knock is made by gpg (--gpg-home-dir).
 * Prints figures; asserts nothing about time.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '../keyring/generate.js';
import { generateOwnKey, importKey } from '../keyring/keystore.js';
import { onInterrupt } from './cleanup.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'client', 'cli.js');

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i !== -1 && process.argv[i + 1] ? (process.argv[i + 1] as string) : dflt;
}

function runOnce(cmd: string, args: string[]): Promise<{ ms: number; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.on('close', (code) => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, code, stderr }));
  });
}

function stats(xs: number[]): { median: number; p90: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? Number.NaN;
  return { median: q(0.5), p90: q(0.9), min: s[0] ?? Number.NaN, max: s[s.length - 1] ?? Number.NaN };
}

/** CPU ms of this process's reaped children so far (cutime + cstime, /proc/self/stat fields 16, 17). */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[13]) + Number(f[14])) * 1000) / 100;
}

function line(label: string, xs: number[], cpuMs: number): void {
  const r = stats(xs);
  console.log(
    `${label.padEnd(34)} n=${xs.length}  median ${r.median.toFixed(1)} ms  p90 ${r.p90.toFixed(1)} ms  (min ${r.min.toFixed(1)}, max ${r.max.toFixed(1)})  CPU mean ${(cpuMs / xs.length).toFixed(1)} ms`,
  );
}

async function gpgHome(root: string, serverArmored: string): Promise<string> {
  const g = join(root, 'gnupg');
  spawnSync('mkdir', ['-m', '700', g]);
  const gpg = (args: string[], input?: string) =>
    spawnSync('gpg', ['--homedir', g, '--batch', '--no-tty', ...args], {
      input: input ?? '',
      encoding: 'utf8',
    });
  const r = gpg([
    '--passphrase',
    '',
    '--quick-gen-key',
    'Bench <bench@example.test>',
    'future-default',
    'default',
    'never',
  ]);
  if (r.status !== 0) throw new Error(`gpg key generation failed: ${r.stderr}`);
  gpg(['--import'], serverArmored);
  return g;
}

async function main(): Promise<void> {
  const n = Math.max(1, Math.min(100, Number(arg('--n', '20'))));
  const mode = arg('--mode', 'both');
  const useGpg = process.argv.includes('--gpg');
  const root = await mkdtemp(join(tmpdir(), 'spa-bench-'));
  const home = join(root, 'home');
  const listener = createSocket('udp4');
  let received = 0;
  listener.on('message', () => {
    received++;
  });
  let gnupg: string | null = null;
  const cleanup = onInterrupt(async () => {
    listener.close();
    if (gnupg) spawnSync('gpgconf', ['--homedir', gnupg, '--kill', 'all']);
    await rm(root, { recursive: true, force: true });
  });
  try {
    await generateOwnKey(home, { username: 'bench' });
    const server = await generateKeyPair({ type: 'curve25519', userId: { name: 'bench server' } });
    await importKey(home, server.publicKeyArmored, { name: 'bench' });
    await writeFile(join(root, 'server.asc'), server.publicKeyArmored);
    if (useGpg) gnupg = await gpgHome(root, server.publicKeyArmored);
    await new Promise<void>((r) => listener.bind(0, '127.0.0.1', () => r()));
    const port = listener.address().port;

    const base = ['--home', home, '-A', 'tcp/22', '-p', String(port)];
    if (gnupg) base.push('--gpg-home-dir', gnupg, '--gpg-recv', server.fingerprint);
    console.log(
      `spa client bench: ${n} runs per line, node ${process.version}, ${useGpg ? 'gpg' : 'default keys (node:crypto)'}`,
    );

    const floor: number[] = [];
    const f0 = childrenCpuMs();
    for (let i = 0; i < n; i++) floor.push((await runOnce(process.execPath, ['-e', '0'])).ms);
    line('node -e 0 (floor)', floor, childrenCpuMs() - f0);

    for (const m of mode === 'both' ? ['test', 'send'] : [mode]) {
      const times: number[] = [];
      const before = received;
      await runOnce(process.execPath, [CLI, ...base, '--test', '127.0.0.1']); // warm the file cache
      const c0 = childrenCpuMs();
      for (let i = 0; i < n; i++) {
        const args = [CLI, ...base, ...(m === 'test' ? ['--test'] : []), '127.0.0.1'];
        const r = await runOnce(process.execPath, args);
        if (r.code !== 0) throw new Error(`spa exited ${r.code}: ${r.stderr.trim()}`);
        times.push(r.ms);
      }
      line(
        m === 'test' ? 'spa --test (no send)' : 'spa knock (send to 127.0.0.1)',
        times,
        childrenCpuMs() - c0,
      );
      if (m === 'send') {
        await new Promise((r) => setTimeout(r, 100));
        console.log(`  datagrams received: ${received - before}/${n}`);
      }
    }
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
