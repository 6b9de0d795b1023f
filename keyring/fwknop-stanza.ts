/**
 * What one access.conf stanza's directives become in spa (SPEC.md §11), or why the stanza is
 * refused. Every directive is either carried over, or reported: a stanza spa cannot honour is
 * refused with its reason, an option with no spa equivalent is a warning on that stanza.
 * Directive meanings are fwknopd's (its access.conf documentation, fwknopd(8)).
 */
import { parseAccessList, formatPortSpec } from '../protocol/access.js';
import type { Stanza } from './fwknop-access-conf.js';
import { DEFAULT_MAX_TIMEOUT, DEFAULT_TIMEOUT, parseFwknopHmacKey, parseSources } from './policy.js';
import { FWKNOP_USERNAME_RE, type KeyRecord } from './schema.js';

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

/** A stanza's policy, as spa records it; the keys it names are still fwknop ids. */
export interface StanzaPolicy {
  /** GPG_FINGERPRINT_ID entries, uppercase, without 0x. */
  readonly fprIds: readonly string[];
  /** GPG_REMOTE_ID entries, uppercase, without 0x. */
  readonly remoteIds: readonly string[];
  readonly sources: 'any' | string[];
  readonly openPorts: string[];
  readonly defaultTimeout: number;
  readonly maxTimeout: number;
  readonly requireSourceAddress: boolean;
  readonly requireUsername: string | null;
  readonly hmacKey: string | null;
  readonly expiresAt: string | null;
  readonly command: KeyRecord['command'];
}

/**
 * The policy of stanza `st`, or the reason it is refused. Warnings about it go to `warn`, in
 * directive order; `now` tells whether ACCESS_EXPIRE has passed.
 */
export function stanzaPolicy(
  st: Stanza,
  now: Date,
  warn: (msg: string) => void,
): { readonly policy: StanzaPolicy } | { readonly refused: string } {
  const v = st.vars;
  const get = (k: string) => v.get(k)?.value;
  const source = get('SOURCE') ?? '';

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
    return { refused: refusal[1] };
  }
  const fprIds = idList(get('GPG_FINGERPRINT_ID'));
  const remoteIds = idList(get('GPG_REMOTE_ID'));
  const rijndael = v.has('KEY') || v.has('KEY_BASE64');
  if (fprIds.length === 0 && remoteIds.length === 0) {
    return {
      refused: rijndael
        ? 'Rijndael (symmetric KEY) only: spa has no shared-key mode; give this user a GnuPG key'
        : 'no GPG_FINGERPRINT_ID or GPG_REMOTE_ID: no key to enroll',
    };
  }
  if (rijndael) warn('KEY/KEY_BASE64 (Rijndael) is not carried over: only GPG-mode knocks are accepted');
  if (v.has('ENCRYPTION_MODE')) warn('ENCRYPTION_MODE applies to Rijndael only and is not carried over');

  // policy
  let sources: 'any' | string[];
  try {
    sources = parseSources(source, 'SOURCE');
  } catch (e) {
    return { refused: `SOURCE: ${(e as Error).message}` };
  }
  const openText = get('OPEN_PORTS');
  if (openText === undefined) {
    return {
      refused: 'OPEN_PORTS is not set: fwknopd opens whatever a knock asks for; spa needs the list of ports',
    };
  }
  let openPorts: string[];
  let restrict: string[] = [];
  try {
    openPorts = parseAccessList(openText, 'OPEN_PORTS').map(formatPortSpec);
    const r = get('RESTRICT_PORTS');
    if (r !== undefined) restrict = parseAccessList(r, 'RESTRICT_PORTS').map(formatPortSpec);
  } catch (e) {
    return { refused: (e as Error).message };
  }
  const removed = openPorts.filter((p) => restrict.includes(p));
  if (removed.length > 0) warn(`RESTRICT_PORTS removes ${removed.join(',')} from OPEN_PORTS`);
  openPorts = openPorts.filter((p) => !restrict.includes(p));
  if (openPorts.length === 0) {
    return { refused: 'OPEN_PORTS minus RESTRICT_PORTS leaves no port' };
  }
  const defaultTimeout = seconds(get('FW_ACCESS_TIMEOUT'), 'FW_ACCESS_TIMEOUT', DEFAULT_TIMEOUT);
  const maxTimeout = seconds(get('MAX_FW_TIMEOUT'), 'MAX_FW_TIMEOUT', DEFAULT_MAX_TIMEOUT);
  if (typeof defaultTimeout === 'string' || typeof maxTimeout === 'string') {
    return { refused: [defaultTimeout, maxTimeout].filter((x) => typeof x === 'string').join('; ') };
  }
  if (defaultTimeout > maxTimeout) {
    return { refused: `FW_ACCESS_TIMEOUT ${defaultTimeout} exceeds MAX_FW_TIMEOUT ${maxTimeout}` };
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
    return {
      refused: `REQUIRE_USERNAME '${requireUsername.slice(0, 48)}' is not a username fwknop can send`,
    };
  }
  const digestType = get('HMAC_DIGEST_TYPE');
  if (digestType !== undefined && !/^sha256$/i.test(digestType)) {
    return {
      refused: `HMAC_DIGEST_TYPE ${digestType}: spa accepts HMAC-SHA256 only (fwknop --hmac-digest-type sha256, the default)`,
    };
  }
  let hmacKey: string | null = null;
  try {
    const b64 = get('HMAC_KEY_BASE64');
    const raw = get('HMAC_KEY');
    if (b64 !== undefined) hmacKey = parseFwknopHmacKey(b64, true, 'HMAC_KEY_BASE64');
    else if (raw !== undefined) hmacKey = parseFwknopHmacKey(raw, false, 'HMAC_KEY');
  } catch (e) {
    return { refused: (e as Error).message };
  }
  if (hmacKey === null)
    warn('no HMAC_KEY: knocks reach decryption from any source (an HMAC key lets spad drop them before)');
  const expiry = parseExpiry(v);
  if (expiry.problem) {
    return { refused: expiry.problem };
  }
  if (expiry.at && Date.parse(expiry.at) <= now.getTime())
    warn(`ACCESS_EXPIRE: already expired (${expiry.at.slice(0, 10)}); enrolled expired`);
  const command: KeyRecord['command'] = null;
  if (yes(get('ENABLE_CMD_EXEC'))) {
    warn(
      'ENABLE_CMD_EXEC: fwknopd runs any command; spa needs a regex of allowed commands, so commands are not carried over (re-add the key with --cmd-regex and --cmd-user)',
    );
  }
  if (v.has('CMD_EXEC_USER') && !yes(get('ENABLE_CMD_EXEC')))
    warn('CMD_EXEC_USER without ENABLE_CMD_EXEC: nothing to carry over');
  return {
    policy: {
      fprIds,
      remoteIds,
      sources,
      openPorts,
      defaultTimeout,
      maxTimeout,
      requireSourceAddress,
      requireUsername,
      hmacKey,
      expiresAt: expiry.at,
      command,
    },
  };
}
