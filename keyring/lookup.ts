/**
 * Finding keys by what people type: a full fingerprint (spaces and `0x` allowed), a long key id
 * (16 hex digits, primary or subkey), a name (username / server name, exact), or, where enabled,
 * a case-insensitive substring of a user id. Short key ids (8 hex) are refused: collisions are
 * cheap to make. Zero matches and several matches are errors that list what exists or what
 * matched, so the user can retype the fingerprint.
 *
 * A key argument names a file only when it is written as a path (`keyFilePath`): it contains a
 * `/` or starts with `file:`. A bare word is always a key name, never a file in the current
 * directory, where whoever controls a checkout could have planted one.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../protocol/errors.js';
import { keyIdOfFingerprint, normalizeFingerprint, parseKey } from './inspect.js';

export interface Candidate {
  readonly fingerprint: string;
  /** Fingerprints of subkeys that also identify this entry (e.g. signing subkeys). */
  readonly subkeyFingerprints?: readonly string[];
  /** Exact names: a username, a server name. */
  readonly names: readonly string[];
  readonly userIds: readonly string[];
}

export type Query =
  | { readonly kind: 'fingerprint'; readonly fingerprint: string }
  | { readonly kind: 'keyid'; readonly keyId: string; readonly text: string }
  | { readonly kind: 'shortid'; readonly text: string }
  | { readonly kind: 'text'; readonly text: string };

export function classifyQuery(q: string): Query {
  const text = q.trim();
  const hex = text.replace(/^0x/i, '').replace(/\s+/g, '').toUpperCase();
  if (/^[0-9A-F]+$/.test(hex)) {
    if (hex.length === 40 || hex.length === 64) return { kind: 'fingerprint', fingerprint: hex };
    if (hex.length === 16) return { kind: 'keyid', keyId: hex, text };
    if (hex.length === 8) return { kind: 'shortid', text };
  }
  return { kind: 'text', text };
}

/**
 * The file a key argument names, or null when it names a stored key (fingerprint, key id, name,
 * user id). `file:PATH` is PATH (`file:///abs` as a file URL); anything else containing a `/` is a
 * path (`./server`, `/etc/spa/server.asc`, `~/keys/gw.asc` with `~` expanded). `server` and
 * `server.asc` are names, never read from the current directory.
 */
export function keyFilePath(q: string): string | null {
  let p: string;
  if (q.startsWith('file:')) {
    p = q.startsWith('file://') ? fileURLToPathOrNull(q) : q.slice('file:'.length);
    if (p === '') {
      throw new ConfigError('USAGE', `'${q.slice(0, 80)}': file: needs a path after it`, {
        hint: 'e.g. file:server.asc or ./server.asc',
      });
    }
  } else if (q.includes('/')) p = q;
  else return null;
  return p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p;
}

function fileURLToPathOrNull(u: string): string {
  try {
    return fileURLToPath(u);
  } catch {
    return '';
  }
}

/** A hint for a name that looks like a file name: files are read only when written as paths. */
export function fileNameHint(q: string): string | undefined {
  const t = q.trim();
  return /\.(asc|gpg|pgp|key|pub)$/i.test(t) && !t.includes('/')
    ? `a key file is read only when written as a path: ./${t} (or file:${t})`
    : undefined;
}

function allFingerprints(c: Candidate): string[] {
  return [c.fingerprint, ...(c.subkeyFingerprints ?? [])];
}

/** Entries matching `q`, in input order. */
export function matchQuery<T>(
  items: readonly T[],
  q: string,
  describe: (t: T) => Candidate,
  opts: { userIdSubstring: boolean },
): T[] {
  const query = classifyQuery(q);
  const byName = (text: string) => items.filter((t) => describe(t).names.includes(text));
  switch (query.kind) {
    case 'fingerprint':
      return items.filter((t) => allFingerprints(describe(t)).includes(query.fingerprint));
    case 'keyid': {
      const byId = items.filter((t) =>
        allFingerprints(describe(t)).some((f) => keyIdOfFingerprint(f) === query.keyId),
      );
      return byId.length > 0 ? byId : byName(query.text);
    }
    case 'shortid': {
      const named = byName(query.text);
      if (named.length > 0) return named;
      throw new ConfigError(
        'KEY_NOT_FOUND',
        `'${query.text}' looks like a short key id, which is not accepted`,
        {
          hint: 'use the full fingerprint or the 16-digit long key id (gpg --list-keys --keyid-format long)',
        },
      );
    }
    case 'text': {
      const named = byName(query.text);
      if (named.length > 0 || !opts.userIdSubstring || query.text === '') return named;
      const needle = query.text.toLowerCase();
      return items.filter((t) => describe(t).userIds.some((u) => u.toLowerCase().includes(needle)));
    }
  }
}

export function describeCandidate(c: Candidate): string {
  const who = [c.names[0], c.userIds[0]].filter((x) => x !== undefined && x !== '').join('  ');
  return who ? `${c.fingerprint}  ${who}` : c.fingerprint;
}

const LIST_MAX = 10;

function listing(items: readonly Candidate[]): string {
  const lines = items.slice(0, LIST_MAX).map((c) => `  ${describeCandidate(c)}`);
  if (items.length > LIST_MAX) lines.push(`  ... and ${items.length - LIST_MAX} more`);
  return lines.join('\n');
}

export function notFound(q: string, what: string, all: readonly Candidate[], emptyHint: string): ConfigError {
  const hints = [all.length === 0 ? emptyHint : `known ${what}s:\n${listing(all)}`];
  const f = fileNameHint(q);
  if (f !== undefined) hints.unshift(f);
  return new ConfigError('KEY_NOT_FOUND', `no ${what} matches '${q.trim().slice(0, 80)}'`, {
    hint: hints.join('\n'),
  });
}

export function ambiguous(q: string, what: string, matches: readonly Candidate[]): ConfigError {
  return new ConfigError(
    'KEY_AMBIGUOUS',
    `'${q.trim().slice(0, 80)}' matches ${matches.length} ${what}s; name one by fingerprint`,
    { hint: `candidates:\n${listing(matches)}` },
  );
}

/** Exactly one match or a KEY_NOT_FOUND / KEY_AMBIGUOUS error. */
export function pickOne<T>(
  items: readonly T[],
  q: string,
  describe: (t: T) => Candidate,
  opts: { what: string; userIdSubstring: boolean; emptyHint: string },
): T {
  const m = matchQuery(items, q, describe, opts);
  if (m.length === 1 && m[0] !== undefined) return m[0];
  if (m.length === 0) throw notFound(q, opts.what, items.map(describe), opts.emptyHint);
  throw ambiguous(q, opts.what, m.map(describe));
}

/**
 * Resolves `query` among stored key records (own keys or server keys) with pickOne's rules.
 * Subkey fingerprints are only computed (keys parsed) when the query is a fingerprint or key id.
 * Shared by the keystore and the client's fast path.
 */
export async function resolveAmong<T extends { fingerprint: string; publicKey: string; userIds: string[] }>(
  items: readonly T[],
  query: string,
  names: (t: T) => string[],
  what: string,
  emptyHint: string,
): Promise<T> {
  const withSubkeys = classifyQuery(query).kind !== 'text';
  const cands = new Map<T, Candidate>();
  for (const t of items) {
    let subs: string[] = [];
    if (withSubkeys) {
      try {
        subs = (await parseKey(t.publicKey)).subkeys.map((k) => normalizeFingerprint(k.getFingerprint()));
      } catch {
        subs = [];
      }
    }
    cands.set(t, {
      fingerprint: t.fingerprint,
      subkeyFingerprints: subs,
      names: names(t),
      userIds: t.userIds,
    });
  }
  return pickOne(items, query, (t) => cands.get(t) as Candidate, { what, userIdSubstring: true, emptyHint });
}
