/**
 * `spa-keys import-fwknop ACCESS_CONF`: turns fwknopd's access.conf stanzas into enrollments with
 * `fwknop` set (SPEC.md §11), so users keep their fwknop client while the server becomes spad.
 * This file plans the import: per stanza of the parsed file (fwknop-access-conf.ts), its policy
 * or the reason it is refused (fwknop-stanza.ts: every directive is either carried over or
 * reported), then its keys, and the records they become. Nothing is dropped silently.
 *
 * Keys come from the GnuPG home (--gpg-home, else the stanza's GPG_HOME_DIR, else /root/.gnupg)
 * through `gpg --export` (fwknop-gpg-home.ts), and go through the same checks as `spa-keys add`
 * (minimal key, public, usable for signing).
 */
import { isSpaError } from '../protocol/errors.js';
import { USERNAME_RE } from '../protocol/limits.js';
import type { ParsedConf } from './fwknop-access-conf.js';
import { DEFAULT_GPG_HOME, type GpgKeyListing, type GpgSource } from './fwknop-gpg-home.js';
import { stanzaPolicy } from './fwknop-stanza.js';
import type { KeyInfo } from './inspect.js';
import { usernameFromUserId } from './policy.js';
import type { KeyRecord } from './schema.js';

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
    const get = (k: string) => st.vars.get(k)?.value;
    const where = `stanza ${st.index} (line ${st.line})`;
    const warn = (msg: string) => warnings.push(`${where}: ${msg}`);
    for (const n of st.notes) warn(n);
    const source = get('SOURCE') ?? '';
    const refuse = (reason: string, key = '-') => {
      rows.push({ stanza: st.index, line: st.line, source, key, user: '-', outcome: 'refused', reason });
      refusedStanzas++;
    };

    const decided = stanzaPolicy(st, deps.now, warn);
    if ('refused' in decided) {
      refuse(decided.refused);
      continue;
    }
    const policy = decided.policy;

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
    for (const id of policy.fprIds) {
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
    for (const id of policy.remoteIds) {
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
        (policy.requireUsername !== null && USERNAME_RE.test(policy.requireUsername)
          ? policy.requireUsername
          : null) ??
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
        expiresAt: policy.expiresAt,
        sources: policy.sources === 'any' ? 'any' : [...policy.sources],
        openPorts: policy.openPorts,
        requireSourceAddress: policy.requireSourceAddress,
        defaultTimeout: policy.defaultTimeout,
        maxTimeout: policy.maxTimeout,
        command: policy.command,
        fwknop: { hmacKey: policy.hmacKey, requireUsername: policy.requireUsername },
      };
      taken.set(w.fingerprint, st.index);
      records.push({ stanza: st.index, info: loaded.info, armored: loaded.armored, record });
      row(username, 'enrolled', '');
    }
    if (refusedHere) refusedStanzas++;
  }
  return { rows, records, warnings, refusedStanzas };
}
