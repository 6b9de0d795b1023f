/**
 * How `spa-keys` prints keys: the enrollment summary the admin confirms, `show`'s record, the
 * `list` tables, expiry dates. Every string that comes from a key or a record is escaped
 * (protocol/display.ts) before it reaches the terminal; the fwknop HMAC key is never printed.
 */
import { displaySafe } from '../protocol/display.js';
import type { KeyInfo } from './inspect.js';
import type { KeyRecord, OwnKeyRecord, ServerKeyRecord } from './schema.js';

function day(iso: string | null): string {
  if (iso === null) return 'never';
  return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso;
}

function expiryText(r: KeyRecord, now: Date): string {
  if (r.expiresAt === null) return 'never';
  const t = day(r.expiresAt);
  return Date.parse(r.expiresAt) <= now.getTime() ? `EXPIRED ${t}` : t;
}

export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, c] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  return rows
    .map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}

/** User ids as shown: escaped (protocol/display.ts), one per line after the first. */
function userIdLines(label: string, userIds: readonly string[], indent: number): string[] {
  const uids = userIds.length === 0 ? ['(none)'] : userIds.map((u) => displaySafe(u));
  return [`${label}${uids[0]}`, ...uids.slice(1).map((u) => `${' '.repeat(indent)}${u}`)];
}

/**
 * What the admin checks before confirming an enrollment. Every string from the key is escaped,
 * and the fingerprint is the last line, right above the question: nothing from the key is
 * printed between the fingerprint and "Does this fingerprint match".
 */
export function keySummary(info: KeyInfo, algorithmLine: string): string {
  const lines = [
    ...userIdLines('  user ids     ', info.userIds, 15),
    `  algorithm    ${algorithmLine}`,
    `  created      ${info.createdAt.slice(0, 10)}`,
    `  expires      ${info.expiresAt ? info.expiresAt.slice(0, 10) : 'never'} (the key's own expiry)`,
  ];
  if (info.isEncrypted) lines.push('  protection   passphrase-protected');
  lines.push(`  fingerprint  ${info.fingerprint}`);
  return `${lines.join('\n')}\n`;
}

export function showRecord(r: KeyRecord, now: Date): string {
  const cmd = r.command
    ? `${displaySafe(JSON.stringify(r.command.regex), { backslash: false })} as ${displaySafe(r.command.runAs)}, ${r.command.timeoutSeconds} s` +
      (r.command.openPorts.length ? `, opens ${r.command.openPorts.join(',')}` : '')
    : 'none';
  return `${[
    `${displaySafe(r.username)}  ${r.fingerprint}`,
    `  enabled          ${r.enabled ? 'yes' : 'no'}`,
    ...userIdLines('  user ids         ', r.userIds, 19),
    `  algorithm        ${displaySafe(r.algorithm)}`,
    `  signing keys     ${r.signingFingerprints.join(', ')}`,
    `  enrolled         ${r.createdAt}`,
    `  expires          ${expiryText(r, now)}`,
    `  sources          ${r.sources === 'any' ? 'any' : r.sources.join(', ')}`,
    `  require source   ${r.requireSourceAddress ? 'yes (knock must name the packet source address)' : 'no (NAT, -a and -s allowed)'}`,
    `  open ports       ${r.openPorts.join(', ')}`,
    `  timeout          ${r.defaultTimeout} s (max ${r.maxTimeout} s)`,
    `  command          ${cmd}`,
    `  fwknop knocks    ${fwknopText(r)}`,
    `  forward          ${r.forward ? r.forward.join(', ') : 'none'}`,
    `  signed reply     ${r.reply === true ? 'yes' : 'no'}`,
  ].join('\n')}\n`;
}

function fwknopText(r: KeyRecord): string {
  if (!r.fwknop) return 'no';
  const hmac = r.fwknop.hmacKey ? 'HMAC key set' : 'no HMAC';
  const user = r.fwknop.requireUsername ? `, username must be ${displaySafe(r.fwknop.requireUsername)}` : '';
  return `yes (${hmac}${user})`;
}

export function sortRecords(rs: KeyRecord[]): KeyRecord[] {
  return rs.sort((a, b) =>
    a.username === b.username ? a.createdAt.localeCompare(b.createdAt) : a.username.localeCompare(b.username),
  );
}

/** A record as list/show print it: the fwknop HMAC key is a secret and never printed. */
export function redactRecord(r: KeyRecord): KeyRecord {
  if (!r.fwknop?.hmacKey) return r;
  return { ...r, fwknop: { ...r.fwknop, hmacKey: '(set)' } };
}

/** `spa-keys list`: one row per enrolled key. */
export function allowlistTable(recs: readonly KeyRecord[], now: Date): string {
  const rows = [['USER', 'FINGERPRINT', 'ENABLED', 'EXPIRES', 'PORTS', 'SOURCES']];
  for (const r of recs) {
    rows.push([
      displaySafe(r.username),
      r.fingerprint,
      r.enabled ? 'yes' : 'no',
      expiryText(r, now),
      r.openPorts.join(','),
      r.sources === 'any' ? 'any' : r.sources.join(','),
    ]);
  }
  return table(rows);
}

/** `spa-keys list --client`: own keys, then server keys. */
export function keystoreTable(
  own: readonly Pick<OwnKeyRecord, 'fingerprint' | 'username' | 'userIds'>[],
  servers: readonly ServerKeyRecord[],
): string {
  const rows = [['KIND', 'FINGERPRINT', 'NAME', 'USER ID']];
  const uid = (u: readonly string[]) => displaySafe(u[0] ?? '');
  for (const r of own) rows.push(['own', r.fingerprint, displaySafe(r.username), uid(r.userIds)]);
  for (const r of servers) rows.push(['server', r.fingerprint, displaySafe(r.name ?? '-'), uid(r.userIds)]);
  return table(rows);
}
