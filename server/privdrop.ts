/**
 * How the monitor makes an unprivileged process (SECURITY.md "Privilege separation"): the
 * account it runs as, its own directory, the setpriv(1) arguments that drop everything else, and
 * reading back from /proc what a process really holds (`spad status`). The supervision of the
 * processes made this way is monitor-process.ts's.
 */
import {
  chmodSync,
  chownSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../protocol/errors.js';

/** Linux O_PATH (x86-64, arm64 and most others; node's fs.constants does not name it). */
const O_PATH = 0o10000000;
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'];

export interface Account {
  uid: number;
  gid: number;
}

export interface ProcessInfo {
  role: 'monitor' | 'verifier' | 'capture';
  pid: number;
  uid: number | null;
  capEff: string | null;
  capPrm: string | null;
  capBnd: string | null;
  noNewPrivs: boolean | null;
}

/** Uid and capability sets of a process, from /proc/PID/status. */
export function processInfo(role: ProcessInfo['role'], pid: number): ProcessInfo {
  let text = '';
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // gone: report what we know
  }
  const field = (name: string): string | null =>
    new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text)?.[1] ?? null;
  const uid = field('Uid');
  const nnp = field('NoNewPrivs');
  return {
    role,
    pid,
    uid: uid === null ? null : Number(uid.split(/\s+/)[0]),
    capEff: field('CapEff'),
    capPrm: field('CapPrm'),
    capBnd: field('CapBnd'),
    noNewPrivs: nnp === null ? null : nnp === '1',
  };
}

/**
 * The account the verifier and capture processes run as: `name` if given, else `spa` (created by
 * scripts/setup.sh), else `nobody`. Never root.
 */
export async function verifierAccount(
  name: string | null,
  lookup: (n: string) => Promise<Account | null>,
): Promise<Account & { name: string }> {
  for (const n of name ? [name] : ['spa', 'nobody']) {
    const a = await lookup(n);
    if (!a) continue;
    if (a.uid === 0 || a.gid === 0) {
      throw new ConfigError('CONFIG_INVALID', `verifier user ${n}: must not be root`, {
        field: 'verifier_user',
      });
    }
    return { ...a, name: n };
  }
  throw new ConfigError('CONFIG_INVALID', `verifier user ${name ?? 'spa or nobody'}: no such user`, {
    field: 'verifier_user',
    hint: 'create it: useradd --system --no-create-home --shell /usr/sbin/nologin spa',
  });
}

/**
 * The verifier's own directory, `<state-dir>/verifier`, mode 0700 and owned by its account: its
 * cwd and the only directory of spad's it may write. Falls back to `/` (which it cannot write)
 * when the state directory refuses the mkdir (a read-only state directory).
 */
export function verifierDir(stateDir: string, account: Account | null): string {
  const dir = join(stateDir, 'verifier');
  try {
    mkdirSync(dir, { mode: 0o700, recursive: true });
    if (account) chownSync(dir, account.uid, account.gid);
    chmodSync(dir, 0o700);
    return dir;
  } catch {
    return existsSync(dir) ? dir : '/';
  }
}

/**
 * An O_PATH descriptor of `dir`: it needs no permission on the directory itself, so root without
 * CAP_DAC_OVERRIDE can hand the verifier its 0700 directory inside the 0700 state directory, which
 * the verifier could not reach by name. null when it cannot be opened (the verifier stays in /).
 */
export function openDirectoryPath(dir: string): number | null {
  try {
    return openSync(dir, O_PATH | fsConstants.O_DIRECTORY);
  } catch {
    return null;
  }
}

export function setprivPath(): string {
  const p = SETPRIV.find((x) => existsSync(x));
  if (!p) {
    throw new ConfigError('IO', "setpriv not found: spad needs it to drop the verifier's privileges", {
      hint: 'install util-linux (Debian: it is essential; apt-get install util-linux)',
    });
  }
  return p;
}

export function dropTo(account: Account, caps: 'none' | 'net_raw'): string[] {
  return [
    `--reuid=${account.uid}`,
    `--regid=${account.gid}`,
    '--clear-groups',
    ...(caps === 'none'
      ? ['--inh-caps=-all', '--bounding-set=-all']
      : ['--inh-caps=+net_raw', '--ambient-caps=+net_raw', '--bounding-set=-all,+net_raw']),
    '--no-new-privs',
    '--',
  ];
}
