/**
 * `spa-keys import-fwknop ACCESS_CONF`: turns fwknopd's access.conf stanzas into enrollments with
 * `fwknop` set (SPEC.md §11), so users keep their fwknop client while the server becomes spad.
 * Directive meanings are fwknopd's (its access.conf documentation, fwknopd(8)). Every directive is
 * either carried over, or reported: a stanza spa cannot honour is refused with its reason, an
 * option with no spa equivalent is a warning on that stanza. Nothing is dropped silently.
 *
 * Keys come from the GnuPG home (--gpg-home, else the stanza's GPG_HOME_DIR, else /root/.gnupg)
 * through `gpg --export`, and go through the same checks as `spa-keys add` (minimal key, public,
 * usable for signing).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { parseAccessList, formatPortSpec } from '../protocol/access.js';
import { ConfigError, isSpaError } from '../protocol/errors.js';
import { USERNAME_RE } from '../protocol/limits.js';
import type { KeyInfo } from './inspect.js';
import {
  DEFAULT_MAX_TIMEOUT,
  DEFAULT_TIMEOUT,
  parseFwknopHmacKey,
  parseSources,
  usernameFromUserId,
} from './policy.js';
import { FWKNOP_USERNAME_RE, type KeyRecord } from './schema.js';

export const DEFAULT_GPG_HOME = '/root/.gnupg';
const CONF_MAX_BYTES = 1_000_000;

export interface Stanza {
  /** 1-based, in file order. */
  readonly index: number;
  readonly line: number;
  /** Directive name (uppercase) → value and line; a repeated directive keeps the last, as fwknopd. */
  readonly vars: ReadonlyMap<string, { value: string; line: number }>;
  /** Problems found while reading the file that belong to this stanza. */
  readonly notes: readonly string[];
}

export interface ParsedConf {
  readonly stanzas: readonly Stanza[];
  /** File-level notes (%include lines, directives before the first SOURCE). */
  readonly notes: readonly string[];
}

/** access.conf syntax: `NAME<whitespace>value`, an optional trailing `;`, `#` comments. */
export function parseAccessConf(text: string): ParsedConf {
  const stanzas: Array<{
    index: number;
    line: number;
    vars: Map<string, { value: string; line: number }>;
    notes: string[];
  }> = [];
  const notes: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) return;
    const m = /^(%?[A-Za-z_][A-Za-z0-9_]*)\s+(.*?)\s*;?\s*$/.exec(t);
    if (!m) {
      (stanzas.at(-1)?.notes ?? notes).push(`line ${line}: not a directive, ignored`);
      return;
    }
    const name = (m[1] ?? '').toUpperCase();
    const value = m[2] ?? '';
    if (name.startsWith('%')) {
      (stanzas.at(-1)?.notes ?? notes).push(
        `line ${line}: ${name} ${value} is not followed; run import-fwknop on that file too`,
      );
      return;
    }
    if (name === 'SOURCE') {
      stanzas.push({ index: stanzas.length + 1, line, vars: new Map(), notes: [] });
    }
    const cur = stanzas.at(-1);
    if (!cur) {
      notes.push(`line ${line}: ${name} before the first SOURCE (fwknopd ignores it too)`);
      return;
    }
    cur.vars.set(name, { value, line });
  });
  return { stanzas, notes };
}

/** A public key exported from a GnuPG home, named by what gpg listed. */
export interface GpgKeyListing {
  /** Primary fingerprint, uppercase. */
  readonly fingerprint: string;
  /** Primary and subkey fingerprints, uppercase. */
  readonly fingerprints: readonly string[];
}

/** What import needs from GnuPG; tests may pass their own. */
export interface GpgSource {
  list(home: string): Promise<readonly GpgKeyListing[]>;
  exportKey(home: string, fingerprint: string): Promise<string>;
}

function run(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'gpg',
      ['--batch', '--no-tty', ...args],
      { maxBuffer: 16 << 20, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new ConfigError(
              'IO',
              `gpg ${args.slice(0, 3).join(' ')}: ${stderr.trim().split('\n').at(-1) ?? err.message}`,
            ),
          );
        else resolve(stdout);
      },
    );
  });
}

export const systemGpg: GpgSource = {
  async list(home) {
    const out = await run(['--homedir', home, '--with-colons', '--fixed-list-mode', '--list-keys']);
    const keys: Array<{ fingerprint: string; fingerprints: string[] }> = [];
    let expectFpr: 'pub' | 'sub' | null = null;
    for (const l of out.split('\n')) {
      const f = l.split(':');
      if (f[0] === 'pub' || f[0] === 'sub') expectFpr = f[0];
      else if (f[0] === 'fpr' && expectFpr) {
        const fpr = (f[9] ?? '').toUpperCase();
        if (expectFpr === 'pub') keys.push({ fingerprint: fpr, fingerprints: [fpr] });
        else keys.at(-1)?.fingerprints.push(fpr);
        expectFpr = null;
      } else if (f[0] !== 'uid' && f[0] !== 'grp') expectFpr = null;
    }
    return keys;
  },
  exportKey(home, fingerprint) {
    return run([
      '--homedir',
      home,
      '--armor',
      '--export-options',
      'export-minimal',
      '--export',
      `${fingerprint}!`,
    ]);
  },
};

/** Directives spa carries over (the rest are reported). */
const CARRIED = new Set([
  'SOURCE',
  'OPEN_PORTS',
  'RESTRICT_PORTS',
  'FW_ACCESS_TIMEOUT',
  'MAX_FW_TIMEOUT',
  'REQUIRE_USERNAME',
  'REQUIRE_SOURCE_ADDRESS',
  'REQUIRE_SOURCE',
  'GPG_FINGERPRINT_ID',
  'GPG_REMOTE_ID',
  'HMAC_KEY',
  'HMAC_KEY_BASE64',
  'HMAC_DIGEST_TYPE',
  'ACCESS_EXPIRE',
  'ACCESS_EXPIRE_EPOCH',
  'ENABLE_CMD_EXEC',
  'CMD_EXEC_USER',
  'GPG_HOME_DIR',
  'KEY',
  'KEY_BASE64',
  'ENCRYPTION_MODE',
]);
/** Server-key directives: spad decrypts with its own key (spa-keys init), not fwknopd's. */
const SERVER_KEY = new Set([
  'GPG_DECRYPT_ID',
  'GPG_DECRYPT_PW',
  'GPG_ALLOW_NO_PW',
  'GPG_EXE',
  'GPG_REQUIRE_SIG',
]);
/** Directives that change what a knock does so much that the stanza is refused. */
const REFUSE = new Map([
  ['FORCE_NAT', 'FORCE_NAT (forwarding to an internal host) has no spa equivalent yet'],
  ['FORWARD_ALL', 'FORWARD_ALL (SPA gateway) has no spa equivalent yet'],
  ['FORCE_SNAT', 'FORCE_SNAT has no spa equivalent yet'],
  ['FORCE_MASQUERADE', 'FORCE_MASQUERADE has no spa equivalent yet'],
  [
    'CMD_CYCLE_OPEN',
    'CMD_CYCLE_OPEN (custom open/close commands) replaces the firewall rule; spa has no equivalent',
  ],
]);

const yes = (v: string | undefined): boolean => v !== undefined && /^(y|yes)$/i.test(v);

export type Outcome = 'enrolled' | 'would enroll' | 'refused' | 'skipped';

export interface Row {
  readonly stanza: number;
  readonly line: number;
  readonly source: string;
  /** Fingerprint, or the id as written when it named no single key. */
  readonly key: string;
  readonly user: string;
  readonly outcome: Outcome;
  /** Why refused or skipped; warnings are in Plan.warnings. */
  readonly reason: string;
}

export interface PlannedRecord {
  readonly stanza: number;
  readonly info: KeyInfo;
  readonly armored: string;
  readonly record: KeyRecord;
}

export interface Plan {
  readonly rows: readonly Row[];
  readonly records: readonly PlannedRecord[];
  /** `stanza N (line L): ...` lines, and file-level notes. */
  readonly warnings: readonly string[];
  readonly refusedStanzas: number;
}

export interface ImportDeps {
  readonly gpg: GpgSource;
  /** --gpg-home, or undefined to use each stanza's GPG_HOME_DIR (default /root/.gnupg). */
  readonly gpgHome: string | undefined;
  readonly now: Date;
  /** The enrolled records, by primary fingerprint (for "already enrolled"). */
  readonly existing: ReadonlyMap<string, KeyRecord>;
  /** Parses and checks an armored key as `spa-keys add` does; throws a ConfigError. */
  readonly loadKey: (armored: string, what: string) => Promise<{ info: KeyInfo; armored: string }>;
}

function parseExpiry(vars: Stanza['vars']): { at: string | null; problem: string | null } {
  const epoch = vars.get('ACCESS_EXPIRE_EPOCH')?.value;
  if (epoch !== undefined) {
    if (!/^[0-9]{1,12}$/.test(epoch))
      return { at: null, problem: `ACCESS_EXPIRE_EPOCH '${epoch}' is not epoch seconds` };
    return { at: new Date(Number(epoch) * 1000).toISOString(), problem: null };
  }
  const date = vars.get('ACCESS_EXPIRE')?.value;
  if (date === undefined) return { at: null, problem: null };
  const m = /^([0-9]{2})\/([0-9]{2})\/([0-9]{4})$/.exec(date);
  const d = m ? new Date(Date.UTC(Number(m[3]), Number(m[1]) - 1, Number(m[2]))) : null;
  if (!m || !d || d.getUTCMonth() !== Number(m[1]) - 1 || d.getUTCDate() !== Number(m[2])) {
    return { at: null, problem: `ACCESS_EXPIRE '${date}' is not MM/DD/YYYY` };
  }
  // fwknopd compares with the local time of day 00:00; spa records UTC midnight
  return { at: d.toISOString(), problem: null };
}

function seconds(v: string | undefined, name: string, def: number): number | string {
  if (v === undefined) return def;
  if (!/^[1-9][0-9]{0,4}$/.test(v) || Number(v) > 86_400) return `${name} '${v}' is not 1..86400 seconds`;
  return Number(v);
}

function idList(v: string | undefined): string[] {
  return (v ?? '')
    .split(/[\s,]+/)
    .map((s) => s.trim().toUpperCase().replace(/^0X/, ''))
    .filter((s) => s !== '');
}

/** Plans the import: what each stanza becomes. Writes nothing. */
export async function planImport(conf: ParsedConf, deps: ImportDeps): Promise<Plan> {
  const rows: Row[] = [];
  const records: PlannedRecord[] = [];
  const warnings: string[] = [...conf.notes];
  let refusedStanzas = 0;
  const taken = new Map<string, number>(); // fingerprint → stanza that enrolled it
  const listings = new Map<string, Promise<readonly GpgKeyListing[]>>();
  const listHome = (home: string) => {
    let p = listings.get(home);
    if (!p) {
      p = deps.gpg.list(home);
      listings.set(home, p);
    }
    return p;
  };

  for (const st of conf.stanzas) {
    const v = st.vars;
    const get = (k: string) => v.get(k)?.value;
    const where = `stanza ${st.index} (line ${st.line})`;
    const warn = (msg: string) => warnings.push(`${where}: ${msg}`);
    for (const n of st.notes) warn(n);
    const source = get('SOURCE') ?? '';
    const refuse = (reason: string, key = '-') => {
      rows.push({ stanza: st.index, line: st.line, source, key, user: '-', outcome: 'refused', reason });
      refusedStanzas++;
    };

    // what is reported without being carried
    for (const [name, { line }] of v) {
      if (CARRIED.has(name) || REFUSE.has(name)) continue;
      if (SERVER_KEY.has(name)) {
        if (name === 'GPG_REQUIRE_SIG' && !yes(get(name))) {
          warn(
            `line ${line}: GPG_REQUIRE_SIG ${get(name)}: spad always requires a signature by the enrolled key`,
          );
        }
        continue;
      }
      if (name === 'GPG_DISABLE_SIG' || name === 'GPG_IGNORE_SIG_VERIFY_ERROR') {
        if (yes(get(name)))
          warn(`line ${line}: ${name} is not carried over: spad always requires a valid signature`);
        continue;
      }
      warn(`line ${line}: ${name} has no spa equivalent and is not carried over`);
    }
    const refusal = [...REFUSE].find(([k]) => v.has(k));
    if (refusal) {
      refuse(refusal[1]);
      continue;
    }
    const fprIds = idList(get('GPG_FINGERPRINT_ID'));
    const remoteIds = idList(get('GPG_REMOTE_ID'));
    const rijndael = v.has('KEY') || v.has('KEY_BASE64');
    if (fprIds.length === 0 && remoteIds.length === 0) {
      refuse(
        rijndael
          ? 'Rijndael (symmetric KEY) only: spa has no shared-key mode; give this user a GnuPG key'
          : 'no GPG_FINGERPRINT_ID or GPG_REMOTE_ID: no key to enroll',
      );
      continue;
    }
    if (rijndael) warn('KEY/KEY_BASE64 (Rijndael) is not carried over: only GPG-mode knocks are accepted');
    if (v.has('ENCRYPTION_MODE')) warn('ENCRYPTION_MODE applies to Rijndael only and is not carried over');

    // policy
    let sources: 'any' | string[];
    try {
      sources = parseSources(source, 'SOURCE');
    } catch (e) {
      refuse(`SOURCE: ${(e as Error).message}`);
      continue;
    }
    const openText = get('OPEN_PORTS');
    if (openText === undefined) {
      refuse('OPEN_PORTS is not set: fwknopd opens whatever a knock asks for; spa needs the list of ports');
      continue;
    }
    let openPorts: string[];
    let restrict: string[] = [];
    try {
      openPorts = parseAccessList(openText, 'OPEN_PORTS').map(formatPortSpec);
      const r = get('RESTRICT_PORTS');
      if (r !== undefined) restrict = parseAccessList(r, 'RESTRICT_PORTS').map(formatPortSpec);
    } catch (e) {
      refuse((e as Error).message);
      continue;
    }
    const removed = openPorts.filter((p) => restrict.includes(p));
    if (removed.length > 0) warn(`RESTRICT_PORTS removes ${removed.join(',')} from OPEN_PORTS`);
    openPorts = openPorts.filter((p) => !restrict.includes(p));
    if (openPorts.length === 0) {
      refuse('OPEN_PORTS minus RESTRICT_PORTS leaves no port');
      continue;
    }
    const defaultTimeout = seconds(get('FW_ACCESS_TIMEOUT'), 'FW_ACCESS_TIMEOUT', DEFAULT_TIMEOUT);
    const maxTimeout = seconds(get('MAX_FW_TIMEOUT'), 'MAX_FW_TIMEOUT', DEFAULT_MAX_TIMEOUT);
    if (typeof defaultTimeout === 'string' || typeof maxTimeout === 'string') {
      refuse([defaultTimeout, maxTimeout].filter((x) => typeof x === 'string').join('; '));
      continue;
    }
    if (defaultTimeout > maxTimeout) {
      refuse(`FW_ACCESS_TIMEOUT ${defaultTimeout} exceeds MAX_FW_TIMEOUT ${maxTimeout}`);
      continue;
    }
    const requireSourceAddress = yes(get('REQUIRE_SOURCE_ADDRESS') ?? get('REQUIRE_SOURCE'));
    if (!requireSourceAddress) {
      warn(
        'REQUIRE_SOURCE_ADDRESS is not Y: as in fwknopd, knocks may name any address (-a) or 0.0.0.0 (-s); set it to Y unless users are behind NAT',
      );
    }
    const requireUsername = get('REQUIRE_USERNAME') ?? null;
    if (
      requireUsername !== null &&
      (!FWKNOP_USERNAME_RE.test(requireUsername) || /["/\\[\]:;|=,+*?<>]/.test(requireUsername))
    ) {
      refuse(`REQUIRE_USERNAME '${requireUsername.slice(0, 48)}' is not a username fwknop can send`);
      continue;
    }
    const digestType = get('HMAC_DIGEST_TYPE');
    if (digestType !== undefined && !/^sha256$/i.test(digestType)) {
      refuse(
        `HMAC_DIGEST_TYPE ${digestType}: spa accepts HMAC-SHA256 only (fwknop --hmac-digest-type sha256, the default)`,
      );
      continue;
    }
    let hmacKey: string | null = null;
    try {
      const b64 = get('HMAC_KEY_BASE64');
      const raw = get('HMAC_KEY');
      if (b64 !== undefined) hmacKey = parseFwknopHmacKey(b64, true, 'HMAC_KEY_BASE64');
      else if (raw !== undefined) hmacKey = parseFwknopHmacKey(raw, false, 'HMAC_KEY');
    } catch (e) {
      refuse((e as Error).message);
      continue;
    }
    if (hmacKey === null)
      warn('no HMAC_KEY: knocks reach decryption from any source (an HMAC key lets spad drop them before)');
    const expiry = parseExpiry(v);
    if (expiry.problem) {
      refuse(expiry.problem);
      continue;
    }
    if (expiry.at && Date.parse(expiry.at) <= deps.now.getTime())
      warn(`ACCESS_EXPIRE: already expired (${expiry.at.slice(0, 10)}); enrolled expired`);
    const command: KeyRecord['command'] = null;
    if (yes(get('ENABLE_CMD_EXEC'))) {
      warn(
        'ENABLE_CMD_EXEC: fwknopd runs any command; spa needs a regex of allowed commands, so commands are not carried over (re-add the key with --cmd-regex and --cmd-user)',
      );
    }
    if (v.has('CMD_EXEC_USER') && !yes(get('ENABLE_CMD_EXEC')))
      warn('CMD_EXEC_USER without ENABLE_CMD_EXEC: nothing to carry over');

    // keys
    const home = deps.gpgHome ?? get('GPG_HOME_DIR') ?? DEFAULT_GPG_HOME;
    let listing: readonly GpgKeyListing[];
    try {
      listing = await listHome(home);
    } catch (e) {
      refuse(`GnuPG home ${home}: ${(e as Error).message}`);
      continue;
    }
    const wanted: Array<{ id: string; fingerprint: string | null; reason: string }> = [];
    for (const id of fprIds) {
      if (!/^[0-9A-F]{40}$/.test(id)) {
        wanted.push({ id, fingerprint: null, reason: 'GPG_FINGERPRINT_ID: not a 40-digit fingerprint' });
        continue;
      }
      const k = listing.find((l) => l.fingerprints.includes(id));
      wanted.push(
        k
          ? { id, fingerprint: k.fingerprint, reason: '' }
          : { id, fingerprint: null, reason: `not in ${home}` },
      );
    }
    for (const id of remoteIds) {
      if (!/^(?:[0-9A-F]{8}|[0-9A-F]{16})$/.test(id)) {
        wanted.push({ id, fingerprint: null, reason: 'GPG_REMOTE_ID: not an 8- or 16-digit key id' });
        continue;
      }
      const ks = listing.filter((l) => l.fingerprints.some((f) => f.endsWith(id)));
      if (ks.length === 1 && ks[0]) {
        wanted.push({ id, fingerprint: ks[0].fingerprint, reason: '' });
        if (id.length === 8)
          warn(`GPG_REMOTE_ID ${id}: a 32-bit id; enrolled by the full fingerprint ${ks[0].fingerprint}`);
      } else {
        wanted.push({
          id,
          fingerprint: null,
          reason:
            ks.length === 0
              ? `not in ${home}`
              : `matches ${ks.length} keys in ${home} (${ks.map((k) => k.fingerprint).join(', ')}); name it by GPG_FINGERPRINT_ID`,
        });
      }
    }
    let refusedHere = false;
    const seen = new Set<string>();
    for (const w of wanted) {
      const row = (user: string, outcome: Outcome, reason: string, key = w.fingerprint ?? w.id) =>
        rows.push({ stanza: st.index, line: st.line, source, key, user, outcome, reason });
      if (!w.fingerprint) {
        row('-', 'refused', `${w.id}: ${w.reason}`);
        refusedHere = true;
        continue;
      }
      if (seen.has(w.fingerprint)) continue; // the same key named twice in one stanza
      seen.add(w.fingerprint);
      const prior = taken.get(w.fingerprint);
      if (prior !== undefined) {
        row('-', 'skipped', `already taken by stanza ${prior} (fwknopd uses the first stanza that matches)`);
        continue;
      }
      const old = deps.existing.get(w.fingerprint);
      if (old) {
        row(old.username, 'skipped', `already enrolled for ${old.username}`);
        continue;
      }
      let loaded: { info: KeyInfo; armored: string };
      try {
        loaded = await deps.loadKey(await deps.gpg.exportKey(home, w.fingerprint), w.fingerprint);
      } catch (e) {
        row('-', 'refused', isSpaError(e) ? e.message : String(e));
        refusedHere = true;
        continue;
      }
      const username =
        (requireUsername !== null && USERNAME_RE.test(requireUsername) ? requireUsername : null) ??
        usernameFromUserId(loaded.info.userIds[0]) ??
        `fwknop${st.index}`;
      const record: KeyRecord = {
        fingerprint: loaded.info.fingerprint,
        username,
        publicKey: loaded.armored,
        signingFingerprints: [...loaded.info.signingFingerprints],
        userIds: [...loaded.info.userIds],
        algorithm: loaded.info.algorithm,
        createdAt: deps.now.toISOString(),
        enabled: true,
        expiresAt: expiry.at,
        sources: sources === 'any' ? 'any' : [...sources],
        openPorts,
        requireSourceAddress,
        defaultTimeout,
        maxTimeout,
        command,
        fwknop: { hmacKey, requireUsername },
      };
      taken.set(w.fingerprint, st.index);
      records.push({ stanza: st.index, info: loaded.info, armored: loaded.armored, record });
      row(username, 'enrolled', '');
    }
    if (refusedHere) refusedStanzas++;
  }
  return { rows, records, warnings, refusedStanzas };
}

export async function readAccessConf(path: string): Promise<ParsedConf> {
  let text: string;
  try {
    const buf = await readFile(path);
    if (buf.length > CONF_MAX_BYTES)
      throw new ConfigError('LIMIT_EXCEEDED', `${path}: more than ${CONF_MAX_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (e) {
    if (isSpaError(e)) throw e;
    throw new ConfigError(
      'IO',
      `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return parseAccessConf(text);
}
