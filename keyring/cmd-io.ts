/**
 * What every `spa-keys` command works with: the side channels (`SpaKeysIo`: output, stdin,
 * TTY-ness, env, prompts, clock), which tests replace to drive the commands in-process, the global
 * flags, and reading a key from a file or stdin. program.ts wires these into commander.
 */
import { readFile, stat } from 'node:fs/promises';
import { ConfigError } from '../protocol/errors.js';
import type { Write } from '../cli/conventions.js';
import type { Prompter } from './prompts.js';

export interface SpaKeysIo {
  stdout: Write;
  stderr: Write;
  /** All of stdin (for `--key -` and `import -`): armored text or binary key bytes. */
  readStdin: () => Promise<string | Uint8Array>;
  /** True when a person can answer prompts (stdin and stderr are terminals). */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  prompter: () => Promise<Prompter>;
  now: () => Date;
}

const STDIN_MAX = 1_000_000;

async function readProcessStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin) {
    const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    n += b.length;
    if (n > STDIN_MAX) throw new ConfigError('USAGE', `stdin is larger than ${STDIN_MAX} bytes`);
    chunks.push(b);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export function defaultIo(): SpaKeysIo {
  return {
    stdout: (s) => {
      process.stdout.write(s);
    },
    stderr: (s) => {
      process.stderr.write(s);
    },
    readStdin: readProcessStdin,
    isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    env: process.env,
    prompter: async () => (await import('./prompts.js')).inquirerPrompter(),
    now: () => new Date(),
  };
}

export interface GlobalOpts {
  stateDir?: string;
  home?: string;
  cluster?: string;
}

export async function fileExists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** Key text from a file: armored as UTF-8 text, binary as bytes. */
export async function readKeyBytes(arg: string, io: SpaKeysIo): Promise<string | Uint8Array> {
  if (arg === '-') return io.readStdin();
  let data: Buffer;
  try {
    const st = await stat(arg);
    if (!st.isFile()) throw new ConfigError('USAGE', `${arg} is not a file`);
    if (st.size > STDIN_MAX) throw new ConfigError('KEY_INVALID', `${arg} is larger than ${STDIN_MAX} bytes`);
    data = await readFile(arg);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError('IO', `cannot read ${arg}: ${(e as Error).message}`, { cause: e });
  }
  return new Uint8Array(data);
}

/** An fwknop HMAC key file: a secret, so its permissions are checked like a passphrase file's. */
export async function readFwknopHmacKey(path: string, base64: boolean, flag: string): Promise<string> {
  const { readCheckedFile } = await import('./file-safety.js');
  const { parseFwknopHmacKey } = await import('./policy.js');
  const f = await readCheckedFile(path, { what: 'fwknop HMAC key file', secret: true, maxBytes: 4096 });
  if (f === null) throw new ConfigError('IO', `${flag}: cannot read ${path}: no such file`, { field: flag });
  return parseFwknopHmacKey(f.data.toString('utf8'), base64, flag);
}
