/**
 * The rig every attack test in test/security/ runs against: spad's real pipeline in memory, with
 * real openpgp.js knocks, users built from real keyring records (server/users.ts `directoryOf`,
 * so policies and lazy key parsing are the daemon's own), a real replay store on disk, a clock
 * the test sets, and a recording firewall (test/helpers/firewall.ts). "The firewall did not
 * change" means the recording firewall saw no call that changes anything (grant, flush).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import type { KeyRecord } from '../../keyring/index.js';
import { seal, type ServerIdentity, serverIdentity } from '../../protocol/envelope.js';
import { memoryAudit } from '../../server/audit.js';
import type { Datagram } from '../../server/capture/types.js';
import type { GrantRequest } from '../../server/firewall/types.js';
import { type Outcome, Pipeline, type SharedReplayCheck } from '../../server/pipeline.js';
import { ReplayStore } from '../../server/replay.js';
import { directoryOf, type LoadedUsers } from '../../server/users.js';
import { concat } from '../helpers/craft.js';
import { type RecordingFirewall, recordingFirewall } from '../helpers/firewall.js';
import {
  freshPayload,
  keyFingerprints,
  type PayloadOverrides,
  TEST_NOW,
  type TestKey,
} from '../helpers/keys.js';

export const CLIENT_IP = '198.51.100.2';
export const ATTACKER_IP = '198.51.100.3';

/** What `spa-keys add` writes for a key when given nothing but the key (the tests' defaults). */
const RECORD_DEFAULTS = {
  algorithm: 'test',
  createdAt: '2025-01-01T00:00:00.000Z',
  enabled: true,
  expiresAt: null,
  sources: 'any',
  openPorts: ['tcp/22', 'udp/53'],
  requireSourceAddress: true,
  defaultTimeout: 30,
  maxTimeout: 300,
  command: null,
} as const satisfies Partial<KeyRecord>;

/** A keyring record for a test key, as `spa-keys add` would write it (alice's defaults). */
export function recordFor(key: TestKey, over: Partial<KeyRecord> = {}): KeyRecord {
  return {
    ...RECORD_DEFAULTS,
    openPorts: [...RECORD_DEFAULTS.openPorts],
    fingerprint: key.fingerprint,
    username: 'alice',
    publicKey: key.armoredPublic,
    signingFingerprints: keyFingerprints(key.publicKey),
    userIds: [`${key.name} <${key.name}@example.test>`],
    ...over,
  };
}

/** The record of an fwknop vector's signer (bob), enrolled with --fwknop and this HMAC key. */
export async function fwknopRecordFor(
  signer: { fingerprint: string; public_key: string },
  hmacKey: string | null,
  over: Partial<KeyRecord> = {},
): Promise<KeyRecord> {
  const key = await openpgp.readKey({ armoredKey: signer.public_key });
  return {
    ...RECORD_DEFAULTS,
    openPorts: [...RECORD_DEFAULTS.openPorts],
    fingerprint: signer.fingerprint,
    username: 'bob',
    publicKey: signer.public_key,
    signingFingerprints: keyFingerprints(key),
    userIds: ['bob <bob@example.test>'],
    fwknop: { hmacKey, requireUsername: null },
    ...over,
  };
}

export function usersOf(records: readonly KeyRecord[]): LoadedUsers {
  return directoryOf(new Map(records.map((r) => [r.fingerprint, r])));
}

export function datagram(payload: Uint8Array, source = CLIENT_IP): Datagram {
  const b = Buffer.from(payload);
  return {
    source,
    sourcePort: 40000,
    destination: '198.51.100.1',
    destinationPort: 62201,
    payload: b,
    length: b.length,
    oversize: false,
    receivedAt: process.hrtime.bigint(),
  };
}

export interface Rig {
  readonly pipeline: Pipeline;
  readonly firewall: RecordingFirewall;
  readonly audit: ReturnType<typeof memoryAudit>;
  readonly identity: ServerIdentity;
  readonly server: TestKey;
  readonly replayFile: string;
  /** The pipeline's clock, in ms; tests move it. */
  clock: number;
  /** Replaces the enrolled users, as a keyring reload does. */
  setUsers(records: readonly KeyRecord[]): void;
  /** The enrolled users the pipeline sees now. */
  users(): LoadedUsers;
  /** A knock sealed by `signer` for this server, at the rig's clock unless `signedAt` says otherwise. */
  knock(signer: TestKey, p?: PayloadOverrides & { signedAt?: Date }): Promise<Uint8Array>;
  send(bytes: Uint8Array, from?: string): Promise<Outcome>;
  /**
   * Sends the datagram and asserts it was dropped with exactly `code`, that the last audit line
   * is that drop, and that the firewall was not touched.
   */
  refused(bytes: Uint8Array | Datagram, code: string, from?: string): Promise<void>;
}

export interface RigOptions {
  readonly server: TestKey;
  readonly records: readonly KeyRecord[];
  /** Share a replay file between rigs to model a restart. */
  readonly replayFile?: string;
  readonly now?: Date;
  readonly maxSkewSeconds?: number;
  /** The pipeline's queue bound (default: spad's). */
  readonly maxQueue?: number;
  /** A fleet's shared replay record (server/cluster/replay.ts). */
  readonly shared?: SharedReplayCheck;
  /** The firewall (default: a recording one). */
  readonly firewall?: RecordingFirewall;
}

const dirs: string[] = [];
process.once('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp dir, removed when the test process exits. */
export function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'spa-security-'));
  dirs.push(d);
  return d;
}

export async function rig(o: RigOptions): Promise<Rig> {
  const identity = await serverIdentity(o.server.privateKey);
  let users = usersOf(o.records);
  const firewall = o.firewall ?? recordingFirewall();
  const audit = memoryAudit();
  const replayFile = o.replayFile ?? join(tempDir(), 'replay.jsonl');
  const r: Rig = {
    clock: (o.now ?? TEST_NOW).getTime(),
  } as Rig;
  const replay = new ReplayStore(replayFile);
  replay.load(r.clock, o.maxSkewSeconds ?? 120);
  const pipeline = new Pipeline({
    identity,
    users: () => users,
    replay,
    ...(o.maxQueue ? { maxQueue: o.maxQueue } : {}),
    ...(o.shared ? { shared: o.shared } : {}),
    firewall,
    audit,
    now: () => r.clock,
    maxSkewSeconds: o.maxSkewSeconds ?? 120,
  });
  const send = (bytes: Uint8Array, from = CLIENT_IP): Promise<Outcome> =>
    pipeline.handle(datagram(bytes, from));
  return Object.assign(r, {
    pipeline,
    firewall,
    audit,
    identity,
    server: o.server,
    replayFile,
    setUsers(records: readonly KeyRecord[]) {
      users = usersOf(records);
    },
    users: () => users,
    async knock(signer: TestKey, p: PayloadOverrides & { signedAt?: Date } = {}) {
      const now = new Date(r.clock);
      return seal(freshPayload({ server: o.server, now, ...p }), {
        signingKey: signer.privateKey,
        serverKey: o.server.publicKey,
        now: p.signedAt ?? now,
      });
    },
    send,
    async refused(bytes: Uint8Array | Datagram, code: string, from = CLIENT_IP) {
      const before = firewall.calls.length;
      const out =
        bytes instanceof Uint8Array ? await send(bytes, from) : await pipeline.handle(bytes as Datagram);
      assert.deepEqual(out, { ok: false, code });
      assert.equal(audit.lines.at(-1)?.event, 'drop');
      assert.equal(audit.lines.at(-1)?.reason, code);
      assert.deepEqual(firewall.calls.slice(before), [], 'the firewall was changed');
    },
  });
}

/**
 * Sends the knock from `from` and asserts it was granted: exactly one new grant, and it is for
 * `grantedTo`, which is `from` unless the test says otherwise (a NAT user's payload address, the
 * IPv4 form of a mapped address).
 */
export async function granted(
  r: Rig,
  bytes: Uint8Array,
  from = CLIENT_IP,
  grantedTo = from,
): Promise<GrantRequest> {
  const before = r.firewall.grants.length;
  const out = await r.send(bytes, from);
  assert.equal(out.ok, true, `expected a grant, got ${JSON.stringify(out)}`);
  assert.equal(r.firewall.grants.length, before + 1);
  const g = r.firewall.grants.at(-1) as GrantRequest;
  assert.equal(g.source, grantedTo, 'the grant is for another address than the test expects');
  return g;
}

/**
 * Encrypts raw packet bytes to `to` without parsing them first (openpgp.js's own encrypt() would
 * refuse to parse nested compression): a session key in a PKESK, the bytes in a SEIPD v1.
 */
export async function encryptRaw(inner: Uint8Array, to: openpgp.PublicKey): Promise<Uint8Array> {
  const sessionKey = new Uint8Array(randomBytes(32));
  const pkesk = (await openpgp.encryptSessionKey({
    data: sessionKey,
    algorithm: 'aes256',
    encryptionKeys: to,
    format: 'binary',
  })) as Uint8Array;
  // fromObject and encrypt are public at run time, missing from openpgp.js's .d.ts
  type Seipd = openpgp.SymEncryptedIntegrityProtectedDataPacket & {
    packets: { write(): Uint8Array };
    encrypt(algo: openpgp.enums.symmetric, key: Uint8Array): Promise<boolean>;
  };
  const seipd = (
    openpgp.SymEncryptedIntegrityProtectedDataPacket as unknown as { fromObject(o: { version: 1 }): Seipd }
  ).fromObject({ version: 1 });
  seipd.packets = { write: () => inner };
  await seipd.encrypt(openpgp.enums.symmetric.aes256, sessionKey);
  const list = new openpgp.PacketList();
  list.push(seipd);
  return concat(pkesk, list.write() as Uint8Array);
}
