/**
 * Shared test keys and fixtures: OpenPGP key pairs generated once per process and cached by name,
 * a `signerMap` that turns public keys into the `lookupSigner` a server uses (every key packet's
 * fingerprint, subkeys included, maps to the primary key's enrollment), and `freshPayload` for a
 * valid knock with overrides.
 *
 * Keys are throwaway, unprotected and made with a fixed creation date (`KEY_DATE`) so that tests
 * may run at a fixed `TEST_NOW` and still see valid keys; with the real clock they are valid too.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as openpgp from 'openpgp';
import type { PortSpec } from '../../protocol/access.js';
import { parseAddress } from '../../protocol/address.js';
import {
  type LookupSigner,
  type ServerIdentity,
  type SignerEntry,
  serverIdentity,
} from '../../protocol/envelope.js';
import { makePayload, type Payload } from '../../protocol/payload.js';

/** Creation time of every generated test key. */
export const KEY_DATE = new Date('2025-01-01T00:00:00Z');
/** A fixed "now" for deterministic protocol tests (keys above are five months old by then). */
export const TEST_NOW = new Date('2025-06-01T12:00:00Z');

/**
 * `ecc`: v4, Ed25519Legacy primary + Curve25519Legacy ECDH subkey (what gpg calls ed25519/cv25519).
 * `v6`: v6 keys, Ed25519 + X25519 (RFC 9580). `rsa2048`/`rsa3072`/`rsa4096`: v4 RSA sign + encrypt.
 */
export type KeyKind = 'ecc' | 'v6' | 'rsa2048' | 'rsa3072' | 'rsa4096';

export interface KeyOptions {
  readonly kind?: KeyKind;
  /** Key creation time; default KEY_DATE. */
  readonly date?: Date;
  /** Seconds after creation when the key (its own OpenPGP expiry) stops being valid. */
  readonly keyExpirationTime?: number;
  /** Add a signing subkey: openpgp.js then signs with it rather than with the primary. */
  readonly signingSubkey?: boolean;
}

export interface TestKey {
  readonly name: string;
  readonly privateKey: openpgp.PrivateKey;
  readonly publicKey: openpgp.PublicKey;
  /** Primary key fingerprint, uppercase hex. */
  readonly fingerprint: string;
  readonly armoredPrivate: string;
  readonly armoredPublic: string;
}

const cache = new Map<string, Promise<TestKey>>();

function generateOptions(name: string, opts: KeyOptions): openpgp.KeyOptions {
  const kind = opts.kind ?? 'ecc';
  const base = {
    userIDs: [{ name, email: `${name}@example.test` }],
    date: opts.date ?? KEY_DATE,
    keyExpirationTime: opts.keyExpirationTime ?? 0,
  };
  const subkeys: openpgp.SubkeyOptions[] = [{}];
  if (opts.signingSubkey) subkeys.push({ sign: true });
  switch (kind) {
    case 'ecc':
      return { ...base, type: 'ecc', curve: 'curve25519Legacy', subkeys };
    case 'v6':
      return { ...base, type: 'curve25519', subkeys, config: { v6Keys: true } };
    case 'rsa2048':
      return { ...base, type: 'rsa', rsaBits: 2048, subkeys };
    case 'rsa3072':
      return { ...base, type: 'rsa', rsaBits: 3072, subkeys };
    case 'rsa4096':
      return { ...base, type: 'rsa', rsaBits: 4096, subkeys };
  }
}

async function generate(name: string, opts: KeyOptions): Promise<TestKey> {
  const { privateKey } = await openpgp.generateKey({ ...generateOptions(name, opts), format: 'object' });
  return fromPrivateKey(name, privateKey);
}

/** A TestKey around an (unprotected) private key object. */
export function fromPrivateKey(name: string, privateKey: openpgp.PrivateKey): TestKey {
  const publicKey = privateKey.toPublic();
  return {
    name,
    privateKey,
    publicKey,
    fingerprint: privateKey.getFingerprint().toUpperCase(),
    armoredPrivate: privateKey.armor(),
    armoredPublic: publicKey.armor(),
  };
}

/** test/vectors/ in the source tree (tests run from dist/test/..., three levels below the root). */
export const VECTOR_DIR = fileURLToPath(new URL('../../../test/vectors/', import.meta.url));

/** One of the fixed keys of test/vectors/keys/ (e.g. 'server-rsa4096'), read once per process. */
export function vectorKey(name: string): Promise<TestKey> {
  const id = `vector:${name}`;
  let p = cache.get(id);
  if (!p) {
    p = readTestKey(name, readFileSync(`${VECTOR_DIR}keys/${name}.asc`, 'utf8'));
    cache.set(id, p);
  }
  return p;
}

/** Reads an armored, unprotected private key (e.g. test/vectors/keys/*.asc). */
export async function readTestKey(name: string, armoredPrivate: string): Promise<TestKey> {
  const privateKey = await openpgp.readPrivateKey({ armoredKey: armoredPrivate });
  return fromPrivateKey(name, privateKey);
}

/**
 * A key pair generated once per process for this name and these options. The same name with
 * different options is a different key.
 */
export function testKey(name: string, opts: KeyOptions = {}): Promise<TestKey> {
  const id = JSON.stringify([
    name,
    opts.kind ?? 'ecc',
    opts.date?.toISOString() ?? null,
    opts.keyExpirationTime ?? 0,
    !!opts.signingSubkey,
  ]);
  let p = cache.get(id);
  if (!p) {
    p = generate(name, opts);
    cache.set(id, p);
  }
  return p;
}

/** The server side of a test key: what `open()` needs. */
export function testServer(k: TestKey): Promise<ServerIdentity> {
  return serverIdentity(k.privateKey);
}

/** Every key packet fingerprint (primary first, then subkeys), uppercase hex. */
export function keyFingerprints(key: openpgp.Key): string[] {
  return [key, ...key.getSubkeys()].map((k) => k.getFingerprint().toUpperCase());
}

export interface Enrollment {
  readonly key: TestKey | openpgp.PublicKey;
  readonly enabled?: boolean;
  readonly expiresAt?: Date | null;
}

function publicOf(k: TestKey | openpgp.PublicKey): openpgp.PublicKey {
  return k instanceof openpgp.PublicKey ? k : k.publicKey;
}

/**
 * A `lookupSigner` over these keys, as the keyring builds it: each key packet's fingerprint (the
 * primary and every subkey) maps to one entry whose identity is the primary fingerprint.
 * Plain keys are enrolled, enabled and without enrollment expiry.
 */
export function signerMap(entries: ReadonlyArray<TestKey | openpgp.PublicKey | Enrollment>): LookupSigner {
  const map = new Map<string, SignerEntry>();
  for (const e of entries) {
    const enrollment: Enrollment =
      'key' in e && !(e instanceof openpgp.PublicKey)
        ? (e as Enrollment)
        : { key: e as TestKey | openpgp.PublicKey };
    const pub = publicOf(enrollment.key);
    const entry: SignerEntry = {
      fingerprint: pub.getFingerprint().toUpperCase(),
      enabled: enrollment.enabled ?? true,
      expiresAt: enrollment.expiresAt ?? null,
      getKey: () => Promise.resolve(pub),
    };
    for (const fpr of keyFingerprints(pub)) map.set(fpr, entry);
  }
  return (fpr) => map.get(fpr);
}

export interface PayloadOverrides extends Partial<Omit<Payload, 'serverFingerprint'>> {
  /** The server the knock names: a key or a fingerprint. Default: 40 'F's, a key no test server has. */
  readonly server?: TestKey | string;
  /** Clock for the default timestamp; default: the real clock. */
  readonly now?: Date;
}

/**
 * A valid access knock: user `alice`, source 198.51.100.2, tcp/22, server default timeout,
 * timestamp = `now`, random nonce. Anything can be overridden; the result is validated.
 */
export function freshPayload(o: PayloadOverrides = {}): Payload {
  const now = o.now ?? new Date();
  const server =
    o.server === undefined ? 'F'.repeat(40) : typeof o.server === 'string' ? o.server : o.server.fingerprint;
  const type = o.type ?? 'access';
  const access: readonly PortSpec[] = o.access ?? (type === 'access' ? [{ proto: 'tcp', port: 22 }] : []);
  return makePayload({
    type,
    timestamp: o.timestamp ?? Math.floor(now.getTime() / 1000),
    nonce: o.nonce ?? new Uint8Array(randomBytes(16)),
    serverFingerprint: server,
    username: o.username ?? 'alice',
    source: o.source ?? parseAddress('198.51.100.2'),
    access,
    timeoutSeconds: o.timeoutSeconds ?? 0,
    command: o.command ?? null,
    ...(o.reply === undefined ? {} : { reply: o.reply }),
    ...(o.forward === undefined ? {} : { forward: o.forward }),
  });
}
