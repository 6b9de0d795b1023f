/**
 * Runs every vector in test/vectors/*.json (format: test/vectors/README.md) through open(): an
 * `ok` vector must open to exactly `expect_payload` from `expect_signer`; any other `expect` is
 * the SpaError code open() must fail with.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { type Opened, open, type SignerEntry, serverIdentity } from '../../protocol/envelope.js';
import { DROP_CODES, SpaError } from '../../protocol/errors.js';
import { describePayload } from '../../protocol/payload.js';
import { keyFingerprints, VECTOR_DIR } from '../helpers/keys.js';

interface VectorSigner {
  fingerprint: string;
  enabled: boolean;
  expires_at: string | null;
  public_key: string;
}

interface VectorFile {
  expect: string;
  description: string;
  now: string;
  max_skew: number;
  server_key: string;
  signers: VectorSigner[];
  packet: string;
  expect_signer?: string;
  expect_signing_key?: string;
  expect_payload?: Record<string, unknown>;
}

/** Scenarios that must stay covered: removing one of these files fails the suite. */
const REQUIRED: Record<string, string> = {
  armored: 'PKT_ARMORED',
  'compressed-bzip2': 'MSG_COMPRESSION',
  'dest-mismatch': 'DEST_MISMATCH',
  'enrollment-expired': 'KEY_EXPIRED',
  'key-disabled': 'KEY_DISABLED',
  'key-expired-before-signing': 'KEY_EXPIRED',
  'key-expired': 'KEY_EXPIRED',
  'key-retired-after-signing': 'KEY_REVOKED',
  'key-revoked': 'KEY_REVOKED',
  'msg-grammar': 'MSG_STRUCTURE',
  'msg-signature-first': 'MSG_STRUCTURE',
  'no-issuer-fingerprint': 'SIG_NO_ISSUER_FPR',
  'not-for-us': 'PKT_NOT_FOR_US',
  'ok-access-ecc': 'ok',
  'ok-access-rsa4096': 'ok',
  'ok-access-v6-aead': 'ok',
  'ok-access-v6': 'ok',
  'ok-command-ecc': 'ok',
  'ok-compressed-zlib': 'ok',
  'ok-freshness-edge': 'ok',
  'ok-forward-reply': 'ok',
  'ok-forward-rand-local': 'ok',
  'ok-forward-v6': 'ok',
  'ok-reply-only': 'ok',
  'ext-flags-zero': 'PAYLOAD_MALFORMED',
  'ext-unknown-flag': 'PAYLOAD_MALFORMED',
  'ext-forward-two-ports': 'PAYLOAD_MALFORMED',
  'ext-command-reply': 'PAYLOAD_MALFORMED',
  'ok-signing-subkey': 'ok',
  'payload-malformed': 'PAYLOAD_MALFORMED',
  'payload-version': 'PAYLOAD_VERSION',
  'sig-time': 'SIG_TIME',
  'signer-forged-issuer': 'SIG_INVALID',
  'signer-keyid-mismatch': 'SIG_INVALID',
  'signer-unknown': 'SIGNER_UNKNOWN',
  'tampered-ciphertext': 'DECRYPT_FAILED',
  'trailing-data': 'PKT_FRAMING',
  'ts-in-future': 'TS_IN_FUTURE',
  'ts-too-old': 'TS_TOO_OLD',
  'two-signatures': 'SIG_MULTIPLE',
  unsigned: 'SIG_MISSING',
};

const files = readdirSync(VECTOR_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

function load(file: string): VectorFile {
  const v = JSON.parse(readFileSync(`${VECTOR_DIR}${file}`, 'utf8')) as VectorFile;
  for (const k of ['expect', 'description', 'now', 'server_key', 'packet'] as const) {
    assert.equal(typeof v[k], 'string', `${file}: field ${k} must be a string`);
  }
  assert.ok(Number.isInteger(v.max_skew) && v.max_skew >= 0, `${file}: max_skew`);
  assert.ok(Array.isArray(v.signers), `${file}: signers`);
  assert.ok(!Number.isNaN(Date.parse(v.now)), `${file}: now is not an ISO date`);
  return v;
}

async function run(v: VectorFile): Promise<Opened> {
  const serverKey = await openpgp.readPrivateKey({ armoredKey: v.server_key });
  const server = await serverIdentity(serverKey);
  const map = new Map<string, SignerEntry>();
  for (const s of v.signers) {
    const key = await openpgp.readKey({ armoredKey: s.public_key });
    assert.equal(key.getFingerprint().toUpperCase(), s.fingerprint, 'signer fingerprint field matches its key');
    const entry: SignerEntry = {
      fingerprint: s.fingerprint,
      enabled: s.enabled,
      expiresAt: s.expires_at === null ? null : new Date(s.expires_at),
      getKey: () => Promise.resolve(key),
    };
    for (const fpr of keyFingerprints(key)) map.set(fpr, entry);
  }
  return open(new Uint8Array(Buffer.from(v.packet, 'base64')), {
    server,
    lookupSigner: (fpr) => map.get(fpr),
    now: new Date(v.now),
    maxSkewSeconds: v.max_skew,
  });
}

describe('test vectors', () => {
  test('every required scenario has a vector file with the expected outcome', () => {
    for (const [name, expect] of Object.entries(REQUIRED)) {
      assert.ok(files.includes(`${name}.json`), `missing vector ${name}.json (npm run vectors)`);
      assert.equal(load(`${name}.json`).expect, expect, name);
    }
  });

  for (const file of files) {
    const v = load(file);
    test(`${file}: ${v.description} → ${v.expect}`, async () => {
      if (v.expect === 'ok') {
        const opened = await run(v);
        assert.deepEqual(describePayload(opened.payload), v.expect_payload);
        assert.equal(opened.signer.fingerprint, v.expect_signer);
        assert.equal(opened.signingKeyFingerprint, v.expect_signing_key);
        return;
      }
      assert.ok((DROP_CODES as readonly string[]).includes(v.expect), `${file}: unknown code ${v.expect}`);
      await assert.rejects(run(v), (e: unknown) => {
        assert.ok(e instanceof SpaError, `${file}: expected a SpaError, got ${String(e)}`);
        assert.equal(e.code, v.expect, `${file}: ${e.message}`);
        return true;
      });
    });
  }
});
