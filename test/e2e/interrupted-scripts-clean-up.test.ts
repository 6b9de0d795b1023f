/**
 * `npm run demo` and `npm run bench`, interrupted: SIGINT or SIGTERM sent to the script once spad
 * and its capture child run in the script's namespaces. The script must run the cleanup of a
 * normal exit and then die of that signal, leaving no namespace of its run, no process it started
 * (spad, the capture child, the TCP service, the probe) and no temp dir behind.
 *
 * The run's processes are found as the descendants of the script (/proc ppid links), and its
 * namespaces from `ip netns identify` of those processes (namespaces carry a per-run id, so other
 * tests running at the same time are not mistaken for ours). Each case is bounded: 30 s to reach
 * spad, 25 s to exit.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { netnsUnavailable, run, waitFor } from '../../scripts/netns.js';

const DIST = fileURLToPath(new URL('../../', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const skip = await netnsUnavailable();

interface Proc {
  pid: number;
  ppid: number;
  start: string;
  cmd: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      out.push({ pid: Number(d), ppid: Number(f[1]), start: f[19] ?? '', cmd });
    } catch {
      /* gone */
    }
  }
  return out;
}

function descendants(root: number): Proc[] {
  const all = processes();
  const found: Proc[] = [];
  const want = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (want.has(p.ppid) && !want.has(p.pid)) {
        want.add(p.pid);
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

function alive(p: Proc): boolean {
  try {
    const f = readFileSync(`/proc/${p.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return f[19] === p.start && f[0] !== 'Z';
  } catch {
    return false;
  }
}

async function namespaceIds(procs: readonly Proc[]): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const p of procs) {
    const r = await run('ip', ['netns', 'identify', String(p.pid)]);
    for (const name of r.stdout.split(/\s+/).filter(Boolean)) ids.add(name.split('-')[0] as string);
  }
  return ids;
}

async function namespacesOf(ids: ReadonlySet<string>): Promise<string[]> {
  const r = await run('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => ids.has(n.split('-')[0] ?? ''));
}

/**
 * Starts `cmd`, waits until a spad it started runs with its capture child, sends `sig`, waits for
 * the exit, and checks that nothing of the run is left. Returns the script's output.
 */
async function interrupt(cmd: string, args: readonly string[], sig: 'SIGINT' | 'SIGTERM'): Promise<string> {
  const child: ChildProcess = spawn(cmd, args, {
    cwd: REPO,
    env: { ...process.env, SPA_SKIP_SETUP: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const pid = child.pid as number;
  try {
    const spadWithCapture = (): boolean => {
      const tree = descendants(pid);
      const spad = tree.find((p) => p.cmd.includes('server/cli.js') && p.cmd.includes('--state-dir'));
      return spad !== undefined && tree.some((p) => p.ppid === spad.pid);
    };
    assert.ok(await waitFor(async () => spadWithCapture(), 30_000, 100), `spad did not start:\n${output}`);
    const tree = descendants(pid);
    const ids = await namespaceIds(tree);
    assert.ok(ids.size > 0, 'the run has processes in its namespaces');
    const spad = tree.find((p) => p.cmd.includes('server/cli.js')) as Proc;
    const stateDir = /--state-dir (\S+)/.exec(spad.cmd)?.[1] as string;

    child.kill(sig);
    const end = await Promise.race([
      exited,
      new Promise<null>((r) => setTimeout(() => r(null), 25_000).unref()),
    ]);
    assert.ok(end, `the script did not exit within 25 s of ${sig}:\n${output}`);
    // both scripts die of the signal they were sent, after their cleanup (scripts/cleanup.ts,
    // bench.sh's on_signal); exit 128 + n is cleanup.ts's fallback for a parent that ignored it
    assert.deepEqual(end, { code: null, signal: sig }, `exit ${JSON.stringify(end)}:\n${output}`);

    assert.deepEqual(await namespacesOf(ids), [], 'namespaces of the run left behind');
    const left = tree.filter(alive).map((p) => `${p.pid} ${p.cmd}`);
    assert.deepEqual(left, [], 'processes of the run left behind');
    assert.ok(!existsSync(stateDir), `temp dir ${stateDir} left behind`);
    return output;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

test(
  'npm run demo, sent SIGTERM while spad runs, leaves no namespace, process or temp dir',
  {
    skip: skip ?? false,
    timeout: 60_000,
  },
  async () => {
    await interrupt(process.execPath, [`${DIST}scripts/demo.js`], 'SIGTERM');
  },
);

test(
  'npm run demo, sent SIGINT while spad runs, leaves no namespace, process or temp dir',
  {
    skip: skip ?? false,
    timeout: 60_000,
  },
  async () => {
    await interrupt(process.execPath, [`${DIST}scripts/demo.js`], 'SIGINT');
  },
);

test(
  'npm run bench, sent SIGTERM during bench-knock, cleans up and keeps its results in a private dir',
  {
    skip: skip ?? false,
    timeout: 60_000,
  },
  async () => {
    const out = await interrupt('bash', [`${REPO}scripts/bench.sh`, 'quick'], 'SIGTERM');
    const file = /partial results in (\S+)/.exec(out)?.[1];
    assert.ok(file, `bench.sh names its results file:\n${out}`);
    const dir = dirname(file);
    try {
      assert.ok(readFileSync(file, 'utf8').includes('# spa benchmarks'), 'the results so far are kept');
      assert.equal(statSync(dir).mode & 0o777, 0o700, 'the results directory is private');
      assert.notEqual(dir, tmpdir());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
