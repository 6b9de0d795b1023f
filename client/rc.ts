/**
 * Named stanzas in `<home>/spa.rc` (default `~/.spa/spa.rc`): saved knock settings, so that
 * `spa -n work` (or `spa connect -n work %h %p` in an ssh ProxyCommand) says everything.
 *
 * Format (INI-like, UTF-8):
 *
 *   # comment (also `;`), blank lines ignored
 *   [work]
 *   host = gw.example.org
 *   access = tcp/22
 *   gpg-recv = 3F1C0A...9E42
 *
 * - A stanza starts with `[NAME]`, NAME = 1..64 of `A-Z a-z 0-9 _ . -`.
 * - Inside, `key = value` lines. Keys are the long flag names (RC_KEYS). The value runs to the end
 *   of the line, trimmed; there is no quoting and no inline comment (a `#` in a value is kept).
 *   Switches (`source-any`, `insecure-resolve`, `ipv4`, `ipv6`, `rand-port`, `nat-local`) take yes/no, true/false, on/off or 1/0.
 * - A stanza named `default`, when present, applies under every run (then the `-n` stanza, then
 *   the command line, each overriding the one before).
 * - Values are checked with the same parsers as the flags, when used, and errors name the file,
 *   the stanza and the key.
 *
 * - The file must be the user's own (or root's) and not writable by group or others, nor may its
 *   directory be, else it is refused, as ssh refuses such a config: a stanza even names the gpg
 *   binary to run (keyring/file-safety.ts, shared with keys.json and passphrase files).
 *
 * `--save-rc-stanza` replaces one stanza (keeps every other line of the file as it was), writing a
 * temporary file with mode 0600 and renaming it over the old one.
 */
import { randomBytes } from 'node:crypto';
import { chmod, type FileHandle, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { checkDirectoryOf, checkFileStats } from '../keyring/file-safety.js';
import { ConfigError } from '../protocol/errors.js';

export const RC_FILE = 'spa.rc';
export const DEFAULT_STANZA = 'default';

/** Keys an rc stanza may hold: the long names of the flags they stand for. */
export const RC_KEYS = [
  'host',
  'access',
  'allow-ip',
  'source-any',
  'resolve-ip-http',
  'insecure-resolve',
  'server-port',
  'ipv4',
  'ipv6',
  'gpg-recv',
  'gpg-sign',
  'gpg-home-dir',
  'gpg-exe',
  'key-passphrase-file',
  'username',
  'fw-timeout',
  'server-cmd',
  'connect-timeout',
  'nat-access',
  'rand-port',
  'rand-port-range',
  'nat-local',
  'retries',
] as const;
export type RcKey = (typeof RC_KEYS)[number];

/** Keys whose values are switches (yes/no). */
export const RC_SWITCHES: ReadonlySet<RcKey> = new Set<RcKey>([
  'source-any',
  'insecure-resolve',
  'ipv4',
  'ipv6',
  'rand-port',
  'nat-local',
]);

export type RcValues = Partial<Record<RcKey, string>>;

export interface Stanza {
  readonly name: string;
  readonly values: RcValues;
  /** 1-based line of the `[name]` header. */
  readonly line: number;
}

export interface RcFile {
  readonly path: string;
  /** false when the file does not exist (an empty rc file). */
  readonly exists: boolean;
  readonly stanzas: ReadonlyMap<string, Stanza>;
  /** The file's lines, kept so that saving one stanza leaves the rest untouched. */
  readonly lines: readonly string[];
}

const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const HEADER_RE = /^\[([^\]]*)\]$/;
const ENTRY_RE = /^([A-Za-z0-9-]+)\s*=\s*(.*)$/;
/** An rc file larger than this is not something we wrote: refuse rather than parse it. */
const RC_MAX_BYTES = 1_000_000;
const CONTROL_RE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

export function rcPath(home: string, flag?: string): string {
  return flag ?? join(home, RC_FILE);
}

export function checkStanzaName(name: string, field = '-n/--named-config'): string {
  if (!NAME_RE.test(name)) {
    throw new ConfigError('USAGE', `${field}: stanza names are 1..64 of A-Z a-z 0-9 _ . -`, { field });
  }
  return name;
}

function isRcKey(k: string): k is RcKey {
  return (RC_KEYS as readonly string[]).includes(k);
}

/** Parses rc text. Unknown keys, duplicate keys or stanzas, and stray lines are errors. */
export function parseRc(text: string, path: string): RcFile {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const stanzas = new Map<string, Stanza>();
  let values: RcValues | null = null;
  let currentName = '';
  const where = (i: number) => `${basename(path)} line ${i + 1}`;
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = HEADER_RE.exec(line);
    if (header) {
      const name = (header[1] ?? '').trim();
      if (!NAME_RE.test(name)) {
        throw new ConfigError('CONFIG_INVALID', `${where(i)}: bad stanza name '${name.slice(0, 64)}'`, {
          hint: 'stanza names are 1..64 of A-Z a-z 0-9 _ . -',
        });
      }
      if (stanzas.has(name)) {
        throw new ConfigError('CONFIG_INVALID', `${where(i)}: stanza [${name}] appears twice`);
      }
      values = {};
      currentName = name;
      stanzas.set(name, { name, values, line: i + 1 });
      continue;
    }
    const entry = ENTRY_RE.exec(line);
    if (!entry) {
      throw new ConfigError('CONFIG_INVALID', `${where(i)}: expected [name] or key = value`);
    }
    if (values === null) {
      throw new ConfigError('CONFIG_INVALID', `${where(i)}: key = value before the first [name] line`);
    }
    const key = (entry[1] ?? '').toLowerCase();
    if (!isRcKey(key)) {
      throw new ConfigError('CONFIG_INVALID', `${where(i)}: unknown key '${key.slice(0, 40)}'`, {
        hint: `keys: ${RC_KEYS.join(', ')}`,
      });
    }
    if (values[key] !== undefined) {
      throw new ConfigError('CONFIG_INVALID', `${where(i)}: key '${key}' given twice in [${currentName}]`);
    }
    values[key] = (entry[2] ?? '').trim();
  }
  return { path, exists: true, stanzas, lines };
}

/**
 * Reads the rc file; a missing file is an empty one. Like ssh with its config, a file that
 * someone else could have written is refused: a stanza names keys, addresses and even the gpg
 * binary to run, so whoever can edit it controls the knock.
 */
export async function readRc(path: string): Promise<RcFile> {
  let text: string;
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'r');
    const st = await fh.stat();
    checkFileStats(path, st, {
      what: 'rc file',
      secret: false,
      ownerHint: 'an rc file must be yours: copy it, or use --rc-file with your own',
    });
    await checkDirectoryOf(path);
    if (st.size > RC_MAX_BYTES) {
      throw new ConfigError('CONFIG_INVALID', `${path}: ${st.size} bytes, at most ${RC_MAX_BYTES}`);
    }
    text = await fh.readFile('utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return { path, exists: false, stanzas: new Map(), lines: [] };
    }
    if (e instanceof ConfigError) throw e;
    throw new ConfigError('IO', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    await fh?.close();
  }
  return parseRc(text, path);
}

/** The stanza called `name`, or a CONFIG_INVALID error listing the ones that exist. */
export function getStanza(rc: RcFile, name: string): Stanza {
  const s = rc.stanzas.get(name);
  if (s) return s;
  const names = [...rc.stanzas.keys()].filter((n) => n !== DEFAULT_STANZA);
  throw new ConfigError('CONFIG_INVALID', `no stanza [${name}] in ${rc.path}`, {
    hint:
      names.length > 0
        ? `stanzas there: ${names.join(', ')}`
        : `save one with: spa -n ${name} --save-rc-stanza [flags] HOST`,
  });
}

/** Text of one stanza, keys in RC_KEYS order. */
export function formatStanza(name: string, values: RcValues): string[] {
  checkStanzaName(name);
  const out = [`[${name}]`];
  for (const k of RC_KEYS) {
    const v = values[k];
    if (v === undefined) continue;
    if (CONTROL_RE.test(v) || v !== v.trim()) {
      throw new ConfigError(
        'CONFIG_INVALID',
        `${k}: value cannot be saved in an rc file (control characters or edge spaces)`,
      );
    }
    out.push(`${k} = ${v}`);
  }
  return out;
}

/** The rc lines with stanza `name` replaced by (or, if absent, followed by) `values`. */
export function replaceStanza(rc: RcFile, name: string, values: RcValues): string {
  const body = formatStanza(name, values);
  const lines = [...rc.lines];
  const old = rc.stanzas.get(name);
  if (!old) {
    if (lines.length === 0) lines.push(`# spa client settings: spa -n NAME uses [NAME] (see: spa --help)`);
    if (lines.length > 0 && (lines[lines.length - 1] ?? '').trim() !== '') lines.push('');
    lines.push(...body);
    return `${lines.join('\n')}\n`;
  }
  // the old stanza runs from its header to the line before the next header (trailing blank and
  // comment lines stay with what follows, so comments above the next stanza are kept)
  const start = old.line - 1;
  let end = start + 1;
  let lastEntry = start;
  for (; end < lines.length; end++) {
    const t = (lines[end] ?? '').trim();
    if (HEADER_RE.test(t)) break;
    if (t !== '' && !t.startsWith('#') && !t.startsWith(';')) lastEntry = end;
  }
  lines.splice(start, lastEntry - start + 1, ...body);
  return `${lines.join('\n')}\n`;
}

/** Writes `text` to `path` via a 0600 temporary file in the same directory and a rename. */
export async function writeRcAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, 0o600); // the umask may have taken bits away, never added: make it exact
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new ConfigError('IO', `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** Saves `values` as stanza `name` in the rc file at `path` (re-read just before writing). */
export async function saveStanza(path: string, name: string, values: RcValues): Promise<void> {
  checkStanzaName(name);
  const rc = await readRc(path);
  await writeRcAtomic(path, replaceStanza(rc, name, values));
}
