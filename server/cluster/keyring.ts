/**
 * The fleet's keyring in Redis. Redis is the source of truth; each gateway's keyring.json is its
 * last good copy (README "Many gateways", SECURITY.md "A fleet on Redis" say why):
 *
 *   spa:keyring      {"body": TEXT, "signature": ARMORED}  TEXT = {"format","revision","writtenAt","keyring"}
 *   spa:keyring:rev  the revision, alone (a cheap "anything new?")
 *   spa:keyring:changed   pub/sub channel; `spa-keys --cluster` publishes the revision
 *
 * `body` is signed (detached OpenPGP signature) with the server key the gateways share, and each
 * gateway accepts a document only if that signature verifies with its own server key, the
 * keyring inside passes the same schema as keyring.json, and its revision is not older than the
 * last one it took (kept in keyring.revision): whoever can write to Redis cannot enroll a key,
 * and cannot bring back an older keyring (say, before a user was disabled) on a gateway that
 * has seen a newer one. A refused or unreachable document leaves the last good keyring in force.
 *
 * Writers (`spa-keys --cluster`) WATCH spa:keyring, copy Redis' keyring into the local file, run
 * the usual local command on it (same lock, same checks), sign the result with revision + 1 and
 * write it back with MULTI/EXEC + PUBLISH: a concurrent writer makes EXEC fail, and the command
 * says so instead of overwriting the other's change.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as openpgp from 'openpgp';
import {
  type AllowlistFile,
  allowlistFileSchema,
  readAllowlistFile,
  validateFile,
  withLock,
  writeFileAtomic,
} from '../../keyring/index.js';
import { pgp, pgpConfig } from '../../keyring/inspect.js';
import { ConfigError } from '../../protocol/errors.js';
import type { ClusterLink } from './connection.js';
import { KEY_PREFIX } from './settings.js';

export const KEYRING_KEY = `${KEY_PREFIX}keyring`;
export const KEYRING_REV_KEY = `${KEY_PREFIX}keyring:rev`;
export const KEYRING_CHANNEL = `${KEY_PREFIX}keyring:changed`;
export const KEYRING_FORMAT = 'spa-keyring/1';
export const REVISION_FILE = 'keyring.revision';
/** Largest document read from Redis (10,000 enrolled keys take about 20 MB). */
export const DOCUMENT_MAX_BYTES = 64 * 1024 * 1024;
/** Least time between two syncs of one gateway, ms. */
export const SYNC_GAP_MS = 100;

export interface KeyringDocument {
  revision: number;
  writtenAt: string;
  keyring: AllowlistFile;
  /** SHA-256 of the signed body: what keyring.revision records. */
  digest: string;
}

const refused = (why: string): ConfigError =>
  new ConfigError('KEYRING_CORRUPT', `cluster keyring in Redis refused: ${why}`, { field: KEYRING_KEY });

/** Signs `keyring` as revision `revision`: the text to store in spa:keyring. */
export async function signKeyringDocument(
  keyring: AllowlistFile,
  revision: number,
  serverKey: openpgp.PrivateKey,
  now: Date,
): Promise<string> {
  const pg = await pgp();
  const body = JSON.stringify({ format: KEYRING_FORMAT, revision, writtenAt: now.toISOString(), keyring });
  const signature = (await pg.sign({
    message: await pg.createMessage({ text: body }),
    signingKeys: serverKey,
    detached: true,
    date: now,
    config: await pgpConfig(),
  })) as string;
  return JSON.stringify({ body, signature });
}

/** Checks a document from Redis: size, shape, signature by `serverKey`, schema. Throws KEYRING_CORRUPT. */
export async function verifyKeyringDocument(
  text: string,
  serverKey: openpgp.PublicKey,
): Promise<KeyringDocument> {
  if (text.length > DOCUMENT_MAX_BYTES) refusedThrow(`larger than ${DOCUMENT_MAX_BYTES} bytes`);
  let outer: unknown;
  try {
    outer = JSON.parse(text);
  } catch {
    throw refused('not JSON');
  }
  const o = outer as { body?: unknown; signature?: unknown };
  if (typeof o.body !== 'string' || typeof o.signature !== 'string')
    throw refused('expected {body, signature}');
  const pg = await pgp();
  const config = await pgpConfig();
  try {
    const r = await pg.verify({
      message: await pg.createMessage({ text: o.body }),
      signature: await pg.readSignature({ armoredSignature: o.signature, config }),
      verificationKeys: serverKey,
      expectSigned: true,
      config,
    });
    for (const s of r.signatures) await s.verified;
  } catch {
    throw refused('not signed by this server key');
  }
  let inner: { format?: unknown; revision?: unknown; writtenAt?: unknown; keyring?: unknown };
  try {
    inner = JSON.parse(o.body) as typeof inner;
  } catch {
    throw refused('signed body is not JSON');
  }
  if (inner.format !== KEYRING_FORMAT) throw refused(`format: expected ${KEYRING_FORMAT}`);
  if (typeof inner.revision !== 'number' || !Number.isSafeInteger(inner.revision) || inner.revision < 1)
    throw refused('revision: expected a whole number >= 1');
  if (typeof inner.writtenAt !== 'string') throw refused('writtenAt: expected a date-time');
  const keyring = validateFile(allowlistFileSchema, inner.keyring, `${KEYRING_KEY} keyring`);
  return {
    revision: inner.revision,
    writtenAt: inner.writtenAt,
    keyring,
    digest: createHash('sha256').update(o.body).digest('hex'),
  };
}

function refusedThrow(why: string): never {
  throw refused(why);
}

/** The revision (and body digest) this state dir last took from Redis; 0 when none. */
export async function readLocalRevision(stateDir: string): Promise<{ revision: number; digest: string }> {
  try {
    const t = (await readFile(join(stateDir, REVISION_FILE), 'utf8')).trim().split(' ');
    const revision = Number(t[0]);
    return Number.isSafeInteger(revision) && revision > 0
      ? { revision, digest: t[1] ?? '' }
      : { revision: 0, digest: '' };
  } catch {
    return { revision: 0, digest: '' };
  }
}

/** Writes the document's keyring as keyring.json (locked, atomic), then its revision. */
export async function writeLocalCopy(stateDir: string, doc: KeyringDocument): Promise<void> {
  const path = join(stateDir, 'keyring.json');
  await withLock(path, async () => {
    await writeFileAtomic(path, `${JSON.stringify(doc.keyring, null, 2)}\n`, 0o600);
  });
  await writeFileAtomic(join(stateDir, REVISION_FILE), `${doc.revision} ${doc.digest}\n`, 0o600);
}

export type SyncResult =
  | { kind: 'updated'; revision: number }
  | { kind: 'current'; revision: number }
  | { kind: 'empty' }
  | { kind: 'refused'; detail: string }
  | { kind: 'unavailable'; detail: string };

export interface KeyringStatus {
  revision: number;
  syncedAt: number | null;
  error: string | null;
}

/**
 * A gateway's side: takes a newer signed keyring from Redis into the local file, on every
 * message on spa:keyring:changed, on every (re)connect, and when asked (the daemon's timer).
 * `onUpdated` is told after the local file was replaced (the daemon reloads).
 */
export class KeyringSync {
  private readonly sub: ClusterLink['redis'];
  private running: Promise<SyncResult> | null = null;
  private again = false;
  private current: KeyringStatus = { revision: 0, syncedAt: null, error: null };

  constructor(
    private readonly link: ClusterLink,
    private readonly stateDir: string,
    private readonly serverKey: openpgp.PublicKey,
    private readonly onResult: (r: SyncResult) => void = () => {},
  ) {
    // a connection of its own: one in subscriber mode can send nothing else
    this.sub = link.redis.duplicate({ autoResubscribe: false });
    this.sub.on('error', () => {});
    this.sub.on('ready', () => {
      this.sub.subscribe(KEYRING_CHANNEL).catch(() => {});
      void this.sync();
    });
    this.sub.on('message', (channel: string) => {
      if (channel === KEYRING_CHANNEL) void this.sync();
    });
  }

  async start(): Promise<SyncResult> {
    this.current.revision = (await readLocalRevision(this.stateDir)).revision;
    await this.sub.connect().catch(() => {});
    return this.sync();
  }

  get status(): KeyringStatus {
    return { ...this.current };
  }

  /** One sync; calls made while one runs are folded into one more afterwards. */
  sync(): Promise<SyncResult> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let r: SyncResult;
      for (;;) {
        this.again = false;
        r = await this.once().catch((err: unknown): SyncResult => ({
          kind: 'refused',
          detail: (err as Error).message,
        }));
        this.onResult(r);
        if (!this.again) break;
        // a burst of messages costs one more sync per SYNC_GAP_MS, not one per message
        await new Promise((res) => setTimeout(res, SYNC_GAP_MS));
      }
      this.running = null;
      return r;
    })();
    return this.running;
  }

  private async once(): Promise<SyncResult> {
    if (!this.link.up) return { kind: 'unavailable', detail: `redis ${this.link.status.state}` };
    let text: string | null;
    try {
      const rev = await this.link.redis.get(KEYRING_REV_KEY);
      if (rev !== null && Number(rev) === this.current.revision && this.current.syncedAt !== null) {
        return { kind: 'current', revision: this.current.revision };
      }
      text = await this.link.redis.get(KEYRING_KEY);
    } catch (err) {
      return { kind: 'unavailable', detail: (err as Error).message };
    }
    if (text === null) return { kind: 'empty' };
    let doc: KeyringDocument;
    try {
      doc = await verifyKeyringDocument(text, this.serverKey);
    } catch (err) {
      this.current.error = (err as Error).message;
      return { kind: 'refused', detail: (err as Error).message };
    }
    const local = await readLocalRevision(this.stateDir);
    if (doc.revision < local.revision) {
      const detail = `cluster keyring in Redis refused: revision ${doc.revision} is older than revision ${local.revision} already taken (a rollback)`;
      this.current.error = detail;
      return { kind: 'refused', detail };
    }
    this.current.syncedAt = Date.now();
    this.current.error = null;
    if (doc.revision === local.revision && doc.digest === local.digest) {
      this.current.revision = doc.revision;
      return { kind: 'current', revision: doc.revision };
    }
    if (doc.revision === local.revision) {
      const detail = `cluster keyring in Redis refused: revision ${doc.revision} differs from the one already taken`;
      this.current.error = detail;
      return { kind: 'refused', detail };
    }
    await writeLocalCopy(this.stateDir, doc);
    this.current.revision = doc.revision;
    return { kind: 'updated', revision: doc.revision };
  }

  async close(): Promise<void> {
    this.sub.disconnect(false);
  }
}

/**
 * The writer's side (`spa-keys --cluster`): Redis' keyring becomes the local file, `fn` runs on
 * it as without a cluster, and when `write` the result is signed as the next revision and stored
 * only if nobody changed it meanwhile. Without a document in Redis yet, the local file seeds it.
 */
export async function withClusterKeyring<R>(
  link: ClusterLink,
  opts: { stateDir: string; write: boolean; serverKey: openpgp.PrivateKey; now: () => Date },
  fn: () => Promise<R>,
): Promise<{ result: R; revision: number; changed: boolean }> {
  if (!link.up) {
    throw new ConfigError(
      'IO',
      `cannot reach the cluster's redis ${link.status.url}: ${link.status.lastError ?? link.status.state}`,
      {
        hint: 'without --cluster, spa-keys changes only this host’s keyring.json',
      },
    );
  }
  const redis = link.redis;
  const io = (err: unknown): ConfigError =>
    new ConfigError('IO', `cluster redis ${link.status.url}: ${(err as Error).message}`, { cause: err });
  let text: string | null;
  try {
    if (opts.write) await redis.watch(KEYRING_KEY);
    text = await redis.get(KEYRING_KEY);
  } catch (err) {
    throw io(err);
  }
  let revision = 0;
  if (text !== null) {
    const doc = await verifyKeyringDocument(text, opts.serverKey.toPublic());
    revision = doc.revision;
    await writeLocalCopy(opts.stateDir, doc);
  }
  const before = JSON.stringify(await readAllowlistFile(opts.stateDir));
  let result: R;
  try {
    result = await fn();
  } catch (err) {
    if (opts.write) await redis.unwatch().catch(() => {});
    throw err;
  }
  if (!opts.write) return { result, revision, changed: false };
  const after = await readAllowlistFile(opts.stateDir);
  if (text !== null && JSON.stringify(after) === before) {
    await redis.unwatch().catch(() => {});
    return { result, revision, changed: false };
  }
  const next = revision + 1;
  const signed = await signKeyringDocument(after, next, opts.serverKey, opts.now());
  let exec: Array<[Error | null, unknown]> | null;
  try {
    exec = await redis
      .multi()
      .set(KEYRING_KEY, signed)
      .set(KEYRING_REV_KEY, String(next))
      .publish(KEYRING_CHANNEL, String(next))
      .exec();
  } catch (err) {
    throw io(err);
  }
  if (exec === null) {
    // put Redis' keyring (the other writer's) back into the local file: it is the truth
    await redis
      .get(KEYRING_KEY)
      .then(async (t) =>
        t === null
          ? undefined
          : writeLocalCopy(opts.stateDir, await verifyKeyringDocument(t, opts.serverKey.toPublic())),
      )
      .catch(() => {});
    throw new ConfigError(
      'KEYRING_LOCKED',
      'the cluster keyring changed in Redis meanwhile; nothing was written there',
      {
        hint: 'run the command again',
      },
    );
  }
  for (const [err] of exec) if (err) throw io(err);
  const doc = await verifyKeyringDocument(signed, opts.serverKey.toPublic());
  await writeFileAtomic(join(opts.stateDir, REVISION_FILE), `${doc.revision} ${doc.digest}\n`, 0o600);
  return { result, revision: next, changed: true };
}
