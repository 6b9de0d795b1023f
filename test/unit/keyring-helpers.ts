/**
 * Helpers for the keyring tests: temp dirs, keys made with openpgp.js, the spa-keys program run
 * in-process with scripted answers, and the real binary spawned.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as openpgp from 'openpgp';
import { runCli } from '../../cli/conventions.js';
import { createProgram, type SpaKeysIo } from '../../keyring/program.js';
import type { Prompter, Validate } from '../../keyring/prompts.js';

export const CLI = fileURLToPath(new URL('../../keyring/cli.js', import.meta.url));
export const KEYRING_INDEX = fileURLToPath(new URL('../../keyring/index.js', import.meta.url));

export async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'spa-keyring-test-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface TestKey {
  readonly publicKey: string;
  readonly privateKey: string;
  readonly fingerprint: string;
}

export async function makeKey(
  opts: {
    name?: string;
    email?: string;
    type?: 'ecc' | 'rsa' | 'curve25519';
    rsaBits?: number;
    subkeys?: openpgp.SubkeyOptions[];
    date?: Date;
    keyExpirationTime?: number;
    passphrase?: string;
    v6?: boolean;
  } = {},
): Promise<TestKey> {
  const type = opts.type ?? 'ecc';
  const uid: openpgp.UserID = { name: opts.name ?? 'Alice', ...(opts.email ? { email: opts.email } : {}) };
  const common = {
    userIDs: [uid],
    format: 'armored' as const,
    config: { v6Keys: opts.v6 === true, minRSABits: 512 },
    ...(opts.subkeys ? { subkeys: opts.subkeys } : {}),
    ...(opts.date ? { date: opts.date } : {}),
    ...(opts.keyExpirationTime ? { keyExpirationTime: opts.keyExpirationTime } : {}),
    ...(opts.passphrase ? { passphrase: opts.passphrase } : {}),
  };
  const r =
    type === 'rsa'
      ? await openpgp.generateKey({ ...common, type: 'rsa', rsaBits: opts.rsaBits ?? 2048 })
      : type === 'curve25519'
        ? await openpgp.generateKey({ ...common, type: 'curve25519' })
        : await openpgp.generateKey({ ...common, type: 'ecc', curve: 'curve25519Legacy' });
  const k = await openpgp.readKey({ armoredKey: r.publicKey });
  return { publicKey: r.publicKey, privateKey: r.privateKey, fingerprint: k.getFingerprint().toUpperCase() };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A prompter that answers from a script; `input` answers rejected by `validate` are recorded. */
export class ScriptedPrompter implements Prompter {
  readonly asked: string[] = [];
  readonly rejected: { message: string; answer: string; reason: string }[] = [];
  readonly said: string[] = [];
  constructor(private readonly answers: (string | boolean)[]) {}

  private next(message: string): string | boolean {
    this.asked.push(message);
    if (this.answers.length === 0) throw new Error(`no scripted answer left for: ${message}`);
    return this.answers.shift() as string | boolean;
  }

  async input(q: { message: string; default?: string; validate?: Validate }): Promise<string> {
    for (;;) {
      const a = this.next(q.message);
      if (typeof a !== 'string') throw new Error(`expected a text answer for: ${q.message}`);
      const v = a === '' && q.default !== undefined ? q.default : a;
      const ok = q.validate ? await q.validate(v) : true;
      if (ok === true) return v;
      this.rejected.push({ message: q.message, answer: a, reason: ok });
    }
  }

  async confirm(q: { message: string; default?: boolean }): Promise<boolean> {
    const a = this.next(q.message);
    if (typeof a !== 'boolean') throw new Error(`expected a yes/no answer for: ${q.message}`);
    return a;
  }

  async readBlock(q: { message: string }): Promise<string> {
    const a = this.next(q.message);
    if (typeof a !== 'string') throw new Error(`expected pasted text for: ${q.message}`);
    return a;
  }

  say(text: string): void {
    this.said.push(text);
  }

  get remaining(): number {
    return this.answers.length;
  }
}

/** Runs spa-keys in-process. No TTY unless a prompter is given. */
export async function runKeys(
  argv: string[],
  opts: { prompter?: Prompter; stdin?: string; env?: NodeJS.ProcessEnv; now?: Date; isTTY?: boolean } = {},
): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const io: Partial<SpaKeysIo> = {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    readStdin: async () => opts.stdin ?? '',
    isTTY: opts.isTTY ?? opts.prompter !== undefined,
    env: opts.env ?? {},
    prompter: async () => {
      if (!opts.prompter) throw new Error('test: no prompter');
      return opts.prompter;
    },
    ...(opts.now ? { now: () => opts.now as Date } : {}),
  };
  const code = await runCli(createProgram(io), argv, {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
  });
  return { code, stdout, stderr };
}

/** Runs the real binary. */
export function spawnKeys(
  argv: string[],
  opts: { input?: string | Uint8Array; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...opts.env };
    const child = spawn(process.execPath, [CLI, ...argv], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Every stderr line follows the output convention. */
export function stderrLinesOk(stderr: string): boolean {
  return stderr
    .split('\n')
    .filter((l) => l !== '')
    .every(
      (l) =>
        /^spa: (error|hint|warning): [^A-Z]/.test(l) ||
        l.startsWith('spa-keys: ') ||
        l.startsWith('  ') ||
        l === 'key to enroll:',
    );
}
