/**
 * Parsers for the per-key policy fields as typed by an admin (flags or prompt answers), turning
 * text into the canonical values stored in the allowlist. Each throws a ConfigError naming the
 * flag; the interactive prompts use the same functions as validators, so a flag and an answer are
 * held to the same rules, and schema.ts checks the stored result once more.
 */
import { formatPortSpec, parseAccessList } from '../protocol/access.js';
import { formatCidr, parseCidr } from '../protocol/address.js';
import { commandRegexError, compileCommandRegex } from '../protocol/command.js';
import { ConfigError, isSpaError } from '../protocol/errors.js';
import { FWKNOP_HMAC_KEY_MAX_BYTES, FWKNOP_HMAC_KEY_MIN_BYTES } from '../protocol/fwknop.js';
import { formatForwardRule, parseForwardList } from '../protocol/forward.js';
import { TIMEOUT_MAX_SECONDS, USERNAME_RE } from '../protocol/limits.js';
import { CMD_TIMEOUT_MAX_SECONDS, SOURCES_MAX } from './schema.js';

export const DEFAULT_TIMEOUT = 30;
export const DEFAULT_MAX_TIMEOUT = 300;
export const DEFAULT_CMD_TIMEOUT = 60;

export function parseUsername(text: string, flag = '--user'): string {
  const u = text.trim();
  if (!USERNAME_RE.test(u)) {
    throw new ConfigError(
      'USERNAME_INVALID',
      `${flag}: '${u.slice(0, 40)}' is not a valid user name (lowercase letters, digits, _ . -; starts with a letter or _; at most 32)`,
      { field: flag },
    );
  }
  return u;
}

/** `any` or a comma-separated list of CIDR blocks / addresses, to canonical text. */
export function parseSources(text: string, flag = '--source'): 'any' | string[] {
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) {
    throw new ConfigError('ADDRESS_INVALID', `${flag}: empty (give CIDR blocks or 'any')`, { field: flag });
  }
  if (items.some((s) => s.toLowerCase() === 'any')) {
    if (items.length > 1) {
      throw new ConfigError('ADDRESS_INVALID', `${flag}: 'any' cannot be combined with CIDR blocks`, {
        field: flag,
      });
    }
    return 'any';
  }
  const out: string[] = [];
  for (const s of items) {
    const c = formatCidr(parseCidr(s, flag));
    if (!out.includes(c)) out.push(c);
  }
  if (out.length > SOURCES_MAX) {
    throw new ConfigError('LIMIT_EXCEEDED', `${flag}: at most ${SOURCES_MAX} CIDR blocks`, { field: flag });
  }
  return out;
}

/** `host:port[,host:port...]` (also `[v6]:port`, `local:port`, `udp/` prefix), to canonical text. */
export function parseForward(text: string, flag = '--forward'): string[] {
  return parseForwardList(text, flag).map(formatForwardRule);
}

export function parseOpenPorts(text: string, flag = '--open'): string[] {
  return parseAccessList(text, flag).map(formatPortSpec);
}

export function parseSeconds(text: string, flag: string, max: number): number {
  const t = text.trim();
  if (!/^[1-9][0-9]{0,5}$/.test(t) || Number(t) > max) {
    throw new ConfigError(
      'USAGE',
      `${flag}: expected whole seconds from 1 to ${max}, got '${t.slice(0, 20)}'`,
      {
        field: flag,
      },
    );
  }
  return Number(t);
}

export const parseTimeout = (t: string, flag = '--timeout') => parseSeconds(t, flag, TIMEOUT_MAX_SECONDS);
export const parseCmdTimeout = (t: string, flag = '--cmd-timeout') =>
  parseSeconds(t, flag, CMD_TIMEOUT_MAX_SECONDS);

export function checkTimeouts(defaultTimeout: number, maxTimeout: number): void {
  if (defaultTimeout > maxTimeout) {
    throw new ConfigError('USAGE', `--timeout ${defaultTimeout} exceeds --max-timeout ${maxTimeout}`, {
      field: '--timeout',
      hint: `raise --max-timeout (at most ${TIMEOUT_MAX_SECONDS}) or lower --timeout`,
    });
  }
}

/**
 * Enrollment expiry: `never`, `YYYY-MM-DD` (the enrollment ends at 00:00 UTC that day, like
 * fwknop's ACCESS_EXPIRE) or an ISO 8601 date-time with a zone. Must be in the future.
 */
export function parseExpiry(text: string, now: Date, flag = '--expires'): string | null {
  const t = text.trim();
  if (t === '' || t.toLowerCase() === 'never') return null;
  let d: Date | null = null;
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(t);
  if (day) {
    d = new Date(Date.UTC(Number(day[1]), Number(day[2]) - 1, Number(day[3])));
    if (d.toISOString().slice(0, 10) !== t) d = null; // 2026-02-31 and the like
  } else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(t)) {
    d = new Date(t);
    if (Number.isNaN(d.getTime())) d = null;
  }
  if (!d) {
    throw new ConfigError('USAGE', `${flag}: expected YYYY-MM-DD, an ISO date-time with a zone, or 'never'`, {
      field: flag,
    });
  }
  if (d.getTime() <= now.getTime()) {
    throw new ConfigError('USAGE', `${flag}: ${d.toISOString()} is not in the future`, { field: flag });
  }
  return d.toISOString();
}

export function parseCommandRegex(text: string, flag = '--cmd-regex'): string {
  const err = commandRegexError(text);
  if (err) throw new ConfigError('COMMAND_INVALID', `${flag}: ${err}`, { field: flag });
  return text;
}

export function parseRunAs(text: string, flag = '--cmd-user'): string {
  const u = text.trim();
  if (!USERNAME_RE.test(u)) {
    throw new ConfigError('COMMAND_INVALID', `${flag}: '${u.slice(0, 40)}' is not a valid unix user name`, {
      field: flag,
    });
  }
  return u;
}

/** Commands a regex should never allow; matching any of them means the regex is far too broad. */
const PROBES = ['x; rm -rf /', 'x && reboot', '$(id)', '`id`', 'x | sh', '../../../etc/shadow', 'a\nb'];

/**
 * Why a command regex is risky, one line per reason (empty when none). The command runs without
 * a shell, but its arguments are still whatever the knock says: a wildcard lets a key holder
 * pass any argument to the program.
 */
export function commandRegexWarnings(re: string): string[] {
  const out: string[] = [];
  const wild = ['.*', '.+', '\\S+', '\\S*', '[^]'].filter((w) => re.includes(w));
  if (wild.length > 0) {
    out.push(
      `--cmd-regex contains ${wild.join(', ')}: a key holder may pass any text there; list the exact commands or narrow character classes (e.g. [a-z0-9-]+)`,
    );
  }
  let anchored: RegExp | null = null;
  try {
    anchored = compileCommandRegex(re);
  } catch {
    return out;
  }
  // also after the regex's literal prefix: `backup-run .*` must be caught with `backup-run x; rm -rf /`
  const prefix = /^[A-Za-z0-9_ /=-]*/.exec(re)?.[0] ?? '';
  const hits: string[] = [];
  for (const p of PROBES) {
    const hit = [p, prefix + p].find((t) => anchored?.test(t));
    if (hit !== undefined) hits.push(hit);
  }
  if (hits.length > 0) {
    out.push(
      `--cmd-regex matches ${hits.map((h) => JSON.stringify(h)).join(', ')}: it allows shell metacharacters or paths no command should need`,
    );
  }
  return out;
}

/** For prompts: `true` when `parse(text)` succeeds, else the error text to show and re-ask. */
export function asValidator(parse: (text: string) => unknown): (text: string) => true | string {
  return (text: string) => {
    try {
      parse(text);
      return true;
    } catch (e) {
      return isSpaError(e) ? e.message : String(e);
    }
  };
}

/** A username from a user id's e-mail local part, lowercased and sanitized; null if none fits. */
export function usernameFromUserId(uid: string | undefined): string | null {
  if (!uid) return null;
  const local = /<([^<>@\s]+)@[^<>\s]+>/.exec(uid)?.[1] ?? /^([^<>@\s]+)@\S+$/.exec(uid.trim())?.[1];
  if (!local) return null;
  const u = local
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '_')
    .slice(0, 32);
  return USERNAME_RE.test(u) ? u : null;
}

/**
 * An fwknop HMAC key (SPEC.md §11.2) from a file: `base64` holds base64 as `fwknop --key-gen`
 * prints it (HMAC_KEY_BASE64), else the raw key text (HMAC_KEY). Returns canonical base64.
 */
export function parseFwknopHmacKey(text: string, base64: boolean, flag: string): string {
  const t = text.replace(/\r?\n$/, '');
  let bytes: Buffer;
  if (base64) {
    // the whole output of fwknop --key-gen is accepted too: its HMAC_KEY_BASE64 line is the key
    const s = (/^HMAC_KEY_BASE64:?\s+(\S+)\s*$/m.exec(t)?.[1] ?? t).trim();
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.length % 4 === 1) {
      throw new ConfigError('KEY_INVALID', `${flag}: not base64`, { field: flag });
    }
    bytes = Buffer.from(s, 'base64');
  } else {
    bytes = Buffer.from(t, 'utf8');
  }
  if (bytes.length < FWKNOP_HMAC_KEY_MIN_BYTES || bytes.length > FWKNOP_HMAC_KEY_MAX_BYTES) {
    throw new ConfigError(
      'KEY_WEAK',
      `${flag}: ${bytes.length} bytes, an fwknop HMAC key must have ${FWKNOP_HMAC_KEY_MIN_BYTES}..${FWKNOP_HMAC_KEY_MAX_BYTES}`,
      {
        field: flag,
        hint: 'make one with: fwknop --key-gen (use its HMAC_KEY_BASE64 with --fwknop-hmac-key-base64)',
      },
    );
  }
  return bytes.toString('base64');
}
