/**
 * Runs every fwknop vector in test/vectors/fwknop/*.json (made by the real Debian fwknop client:
 * scripts/gen-fwknop-vectors.sh; format: test/vectors/fwknop/README.md) through openFwknop(): an
 * `ok` vector must give exactly its `expect_fields` from `expect_signer`; any other `expect` is
 * the drop code.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { type SignerEntry, serverIdentity } from '../../protocol/envelope.js';
import { DROP_CODES, SpaError } from '../../protocol/errors.js';
import {
  type FwknopEnrollment,
  type FwknopHmacKey,
  fwknopMayBeForUs,
  looksLikeFwknop,
  type OpenedFwknop,
  openFwknop,
  unwrapFwknop,
} from '../../protocol/fwknop.js';
import { keyFingerprints, VECTOR_DIR } from '../helpers/keys.js';

const DIR = `${VECTOR_DIR}fwknop/`;

interface VectorSigner {
  fingerprint: string;
  public_key: string;
  fwknop: boolean;
  hmac_key_base64: string | null;
  require_username: string | null;
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
  expect_fields?: {
    random: string;
    username: string;
    timestamp: number;
    version: string;
    type: number;
    message: string;
    client_timeout: number;
    digest: string;
  };
}

/** Scenarios that must stay covered: removing one of these files fails the suite. */
const REQUIRED: Record<string, string> = {
  'ok-access-rsa': 'ok',
  'ok-access-ecc': 'ok',
  'ok-timeout-sha512-hmac-rsa': 'ok',
  'ok-hmac-ecc': 'ok',
  'ok-command-rsa': 'ok',
  'ok-source-any-user-ecc': 'ok',
  'ok-sha3-ecc': 'ok',
  'nat-ecc': 'FWK_NAT_UNSUPPORTED',
  'nat-local-ecc': 'FWK_NAT_UNSUPPORTED',
  'unsigned-ecc': 'SIG_MISSING',
  'signer-unknown-ecc': 'SIGNER_UNKNOWN',
  'not-enabled-ecc': 'FWK_NOT_ENABLED',
  'username-mismatch-ecc': 'USER_MISMATCH',
  'stale-ecc': 'TS_TOO_OLD',
  'hmac-broken-ecc': 'FWK_HMAC_INVALID',
  'hmac-missing-ecc': 'FWK_HMAC_INVALID',
  'hmac-unexpected-ecc': 'FWK_HMAC_INVALID',
  'not-for-us-ecc': 'PKT_NOT_FOR_US',
};

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

function load(file: string): VectorFile {
  return JSON.parse(readFileSync(`${DIR}${file}`, 'utf8')) as VectorFile;
}

async function run(v: VectorFile): Promise<OpenedFwknop> {
  const server = await serverIdentity(await openpgp.readPrivateKey({ armoredKey: v.server_key }));
  const signers = new Map<string, SignerEntry>();
  const fwknop = new Map<string, FwknopEnrollment>();
  const hmacKeys: FwknopHmacKey[] = [];
  let withoutHmac = false;
  for (const s of v.signers) {
    const key = await openpgp.readKey({ armoredKey: s.public_key });
    assert.equal(key.getFingerprint().toUpperCase(), s.fingerprint);
    const entry: SignerEntry = {
      fingerprint: s.fingerprint,
      enabled: true,
      expiresAt: null,
      getKey: () => Promise.resolve(key),
    };
    for (const f of keyFingerprints(key)) signers.set(f, entry);
    if (!s.fwknop) continue;
    fwknop.set(s.fingerprint, {
      username: 'vector-user',
      hmac: s.hmac_key_base64 !== null,
      requireUsername: s.require_username,
    });
    if (s.hmac_key_base64 === null) withoutHmac = true;
    else hmacKeys.push({ id: s.fingerprint, key: new Uint8Array(Buffer.from(s.hmac_key_base64, 'base64')) });
  }
  const bytes = new Uint8Array(Buffer.from(v.packet, 'latin1'));
  assert.ok(looksLikeFwknop(bytes), 'the datagram is recognised as fwknop');
  const u = unwrapFwknop(v.packet, {
    hmacKeys,
    acceptWithoutHmac: withoutHmac,
    recipientKeyIds: server.recipientKeyIds,
  });
  assert.equal(fwknopMayBeForUs(bytes, server.recipientKeyIds), true, 'the capture prefilter lets it through');
  return openFwknop(u, {
    server,
    lookupSigner: (f) => signers.get(f),
    now: new Date(v.now),
    maxSkewSeconds: v.max_skew,
    fwknopOf: (f) => fwknop.get(f),
  });
}

describe('fwknop test vectors (made by the real fwknop client)', () => {
  test('every required scenario has a vector file with the expected outcome', () => {
    for (const [name, expect] of Object.entries(REQUIRED)) {
      assert.ok(files.includes(`${name}.json`), `missing vector fwknop/${name}.json`);
      assert.equal(load(`${name}.json`).expect, expect, name);
    }
  });

  for (const file of files) {
    const v = load(file);
    test(`${file}: ${v.description} → ${v.expect}`, async () => {
      if (v.expect === 'ok') {
        const o = await run(v);
        const f = v.expect_fields;
        assert.ok(f);
        assert.equal(o.signer.fingerprint, v.expect_signer);
        assert.equal(o.message.random, f.random);
        assert.equal(o.message.username, f.username);
        assert.equal(o.message.timestamp, f.timestamp);
        assert.equal(o.message.version, f.version);
        assert.equal(o.message.type, f.type);
        assert.equal(o.message.message, f.message);
        assert.equal(o.message.clientTimeout, f.client_timeout);
        const data = (o.signed.literal as unknown as { getBytes(): Uint8Array }).getBytes();
        assert.ok(Buffer.from(data).toString('latin1').endsWith(`:${f.digest}`));
        assert.equal(o.payload.username, 'vector-user', 'the enrolled name, never the packet’s');
        assert.equal(o.payload.timestamp, f.timestamp);
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
