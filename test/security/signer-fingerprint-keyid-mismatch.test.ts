/**
 * Attack: the signer is looked up by the Issuer Fingerprint subpacket, but openpgp.js verifies
 * with whatever key the Issuer Key ID names, and both may sit in the unhashed area, where the
 * signature does not cover them. A victim key has subkeys A and B that can both sign; the
 * enrollment lists the primary and A only (B was created after the admin enrolled the key, so it
 * was not valid then and `spa-keys add` did not list it). A signature made by B, whose unhashed
 * area names A's fingerprint and then B's key id, was found by A's fingerprint, verified with
 * B, accepted, and reported as signed by A.
 *
 * What must hold (SPEC.md §3): the verifying key is exactly the key the fingerprint names, one
 * that the enrollment lists; an issuer key id or one-pass signature naming another key is
 * refused.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { describeKey } from '../../keyring/index.js';
import { open, serverIdentity, type ServerIdentity } from '../../protocol/envelope.js';
import { encodePayload, hexToBytes } from '../../protocol/payload.js';
import { concat, encryptPackets, splitPackets, subpacket, withUnhashed } from '../helpers/craft.js';
import { freshPayload, fromPrivateKey, KEY_DATE, TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { granted, type Rig, recordFor, rig } from './rig.js';

const SUB_ISSUER_KEY_ID = 16;
const SUB_ISSUER_FPR = 33;
/** The admin enrolled the key here; subkey B was created a month later. */
const ENROLLED_AT = new Date('2025-02-01T00:00:00Z');
const B_CREATED = new Date('2025-03-01T00:00:00Z');

function newFormat(tag: number, body: Uint8Array): Uint8Array {
  return concat(Uint8Array.of(0xc0 | tag, body.length), body);
}

function bodyOf(raw: Uint8Array): Uint8Array {
  return raw.subarray((raw[1] ?? 0) < 192 ? 2 : 3);
}

/** A v3 one-pass signature packet naming another key id. */
function opsNaming(opsRaw: Uint8Array, keyId: Uint8Array): Uint8Array {
  const body = Uint8Array.from(bodyOf(opsRaw));
  assert.equal(body[0], 3, 'v3 one-pass signature');
  body.set(keyId, 4);
  return newFormat(4, body);
}

describe('a signature whose issuer fingerprint and issuer key id name different subkeys', () => {
  let r: Rig;
  let victim: TestKey;
  let identity: ServerIdentity;
  /** the victim's signing subkeys: A is enrolled, B is not */
  let a: openpgp.Subkey;
  let b: openpgp.Subkey;
  const fprOf = (k: openpgp.Subkey) => concat(Uint8Array.of(4), hexToBytes(k.getFingerprint()));
  const idOf = (k: openpgp.Subkey) => hexToBytes(k.getKeyID().toHex());

  before(async () => {
    const server = await testKey('sec-server');
    const { privateKey } = await openpgp.generateKey({
      userIDs: [{ name: 'victim', email: 'victim@example.test' }],
      type: 'ecc',
      curve: 'curve25519Legacy',
      date: KEY_DATE,
      subkeys: [{}, { sign: true }],
      format: 'object',
    });
    const withB = await privateKey.addSubkey({ sign: true, date: B_CREATED });
    victim = fromPrivateKey('victim', withB);
    const signing = victim.publicKey
      .getSubkeys()
      .filter((s) => s.getAlgorithmInfo().algorithm === 'eddsaLegacy');
    assert.equal(signing.length, 2);
    [a, b] = signing as [openpgp.Subkey, openpgp.Subkey];
    // what `spa-keys add` recorded on the day of enrollment: the primary and A, not B
    const enrolled = await describeKey(victim.publicKey, ENROLLED_AT);
    assert.deepEqual(enrolled.signingFingerprints, [victim.fingerprint, a.getFingerprint().toUpperCase()]);
    r = await rig({
      server,
      records: [recordFor(victim, { signingFingerprints: [...enrolled.signingFingerprints] })],
    });
    identity = await serverIdentity(server.privateKey);
  });

  /** OPS, Literal, Signature made by one of the victim's signing keys, as raw packets. */
  async function signedBy(key: openpgp.Subkey | 'primary') {
    const message = await openpgp.createMessage({
      binary: encodePayload(freshPayload({ server: r.server, now: TEST_NOW })),
      format: 'binary',
      date: TEST_NOW,
    });
    const signed = (await openpgp.sign({
      message,
      signingKeys: victim.privateKey,
      signingKeyIDs: key === 'primary' ? victim.privateKey.getKeyID() : key.getKeyID(),
      format: 'binary',
      date: TEST_NOW,
    })) as Uint8Array;
    const packets = splitPackets(signed);
    assert.deepEqual(
      packets.map((p) => p.tag),
      [4, 11, 2],
    );
    const [ops, lit, sig] = packets.map((p) => p.bytes) as [Uint8Array, Uint8Array, Uint8Array];
    return { ops, lit, sig };
  }

  const seal = (...packets: Uint8Array[]) =>
    encryptPackets(concat(...packets), r.server.publicKey, { now: TEST_NOW });

  const openDirect = (bytes: Uint8Array) =>
    open(bytes, {
      server: identity,
      lookupSigner: r.users().lookupSigner,
      now: TEST_NOW,
      maxSkewSeconds: 120,
    });

  test('a signature by unlisted subkey B whose unhashed area names A’s fingerprint, then B’s key id, is refused as SIG_INVALID', async () => {
    const { ops, lit, sig } = await signedBy(b);
    const forged = await seal(
      ops,
      lit,
      withUnhashed(sig, subpacket(SUB_ISSUER_FPR, fprOf(a)), subpacket(SUB_ISSUER_KEY_ID, idOf(b))),
    );
    await assert.rejects(openDirect(forged), { code: 'SIG_INVALID' });
    await r.refused(forged, 'SIG_INVALID');
  });

  test('the same signature with its issuer untouched is refused as SIGNER_UNKNOWN: the enrollment does not list B', async () => {
    const { ops, lit, sig } = await signedBy(b);
    await r.refused(await seal(ops, lit, sig), 'SIGNER_UNKNOWN');
  });

  test('B’s signature relabelled as A everywhere (one-pass signature, key id, fingerprint) is checked against A and refused as SIG_INVALID', async () => {
    const { ops, lit, sig } = await signedBy(b);
    await r.refused(
      await seal(
        opsNaming(ops, idOf(a)),
        lit,
        withUnhashed(sig, subpacket(SUB_ISSUER_FPR, fprOf(a)), subpacket(SUB_ISSUER_KEY_ID, idOf(a))),
      ),
      'SIG_INVALID',
    );
  });

  test('a signature by the primary key whose unhashed fingerprint names A, with the primary’s key id after it, is refused as SIG_INVALID', async () => {
    const { ops, lit, sig } = await signedBy('primary');
    const primaryId = hexToBytes(victim.fingerprint.slice(-16));
    await r.refused(
      await seal(
        ops,
        lit,
        withUnhashed(sig, subpacket(SUB_ISSUER_FPR, fprOf(a)), subpacket(SUB_ISSUER_KEY_ID, primaryId)),
      ),
      'SIG_INVALID',
    );
  });

  test('a knock signed by listed subkey A opens, and open() names A as the key that signed', async () => {
    const { ops, lit, sig } = await signedBy(a);
    const bytes = await seal(ops, lit, sig);
    const opened = await openDirect(bytes);
    assert.equal(opened.signingKeyFingerprint, a.getFingerprint().toUpperCase());
    assert.equal(opened.signer.fingerprint, victim.fingerprint);
    await granted(r, bytes);
  });
});
