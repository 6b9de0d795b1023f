/**
 * Attack: a knock with a perfectly valid signature, but from a key the server never enrolled;
 * and the same stranger relabelling the signature with an enrolled key's id and fingerprint.
 * Anyone may hold the server's public key, so both decrypt fine: the signer step must refuse.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { craftKnock, encryptPackets, forgedIssuerPackets } from '../helpers/craft.js';
import { freshPayload, TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { encodePayload } from '../../protocol/payload.js';
import { ATTACKER_IP, granted, type Rig, recordFor, rig } from './rig.js';

describe('a knock signed by a key that is not enrolled', () => {
  let r: Rig;
  let alice: TestKey;
  let mallory: TestKey;
  before(async () => {
    const server = await testKey('sec-server');
    alice = await testKey('sec-alice');
    mallory = await testKey('sec-mallory');
    r = await rig({ server, records: [recordFor(alice)] });
  });

  test('a valid signature from an unenrolled key is refused as SIGNER_UNKNOWN, even naming an enrolled username', async () => {
    await r.refused(await r.knock(mallory), 'SIGNER_UNKNOWN');
    await r.refused(await r.knock(mallory, { username: 'alice' }), 'SIGNER_UNKNOWN', ATTACKER_IP);
  });

  test('an unenrolled key signing through a crafted (non-seal) message is refused as SIGNER_UNKNOWN', async () => {
    const payload = encodePayload(freshPayload({ server: r.server, now: TEST_NOW }));
    const bytes = await craftKnock(payload, {
      signers: [mallory.privateKey],
      to: r.server.publicKey,
      now: TEST_NOW,
    });
    await r.refused(bytes, 'SIGNER_UNKNOWN');
  });

  // open()'s verdict on this is test/vectors/signer-forged-issuer.json; here, what the pipeline
  // adds: the drop is not put on alice's account, and alice is not locked out by it
  test('a stranger’s signature relabelled with the enrolled key’s id and fingerprint is refused as SIG_INVALID, not logged as alice’s', async () => {
    const payload = encodePayload(freshPayload({ server: r.server, now: TEST_NOW, username: 'alice' }));
    const inner = await forgedIssuerPackets(payload, mallory.privateKey, alice.publicKey, TEST_NOW);
    const bytes = await encryptPackets(inner, r.server.publicKey, { now: TEST_NOW });
    await r.refused(bytes, 'SIG_INVALID', ATTACKER_IP);
    const line = r.audit.lines.at(-1);
    assert.equal(line?.source, ATTACKER_IP);
    assert.equal(line?.user, undefined, 'the drop names no user');
    assert.equal(line?.fingerprint, undefined, 'the drop names no key');
    await granted(r, await r.knock(alice));
  });

  test('the enrolled key itself still gets in (the refusals above are not a broken rig)', async () => {
    await granted(r, await r.knock(alice));
  });
});
