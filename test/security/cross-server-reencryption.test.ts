/**
 * Attack: a knock sealed for server A is decrypted by A's operator (or anyone holding A's key)
 * and the signed packets inside are re-encrypted to server B, where the same user is enrolled.
 * The signature is genuine; only the destination binding (the payload names A's fingerprint)
 * stops it.
 */
import { before, describe, test } from 'node:test';
import { decryptToPackets, encryptPackets } from '../helpers/craft.js';
import { TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { ATTACKER_IP, granted, type Rig, recordFor, rig } from './rig.js';

describe('a message signed for server A re-encrypted to server B', () => {
  let a: Rig;
  let b: Rig;
  let alice: TestKey;
  before(async () => {
    alice = await testKey('sec-alice');
    const serverA = await testKey('sec-server');
    const serverB = await testKey('sec-server-b');
    a = await rig({ server: serverA, records: [recordFor(alice)] });
    b = await rig({ server: serverB, records: [recordFor(alice)] });
  });

  test('A opens it; the same signed packets re-encrypted to B are refused at B as DEST_MISMATCH', async () => {
    const forA = await a.knock(alice);
    await granted(a, forA);
    const inner = await decryptToPackets(forA, a.server.privateKey, TEST_NOW);
    const toB = await encryptPackets(inner, b.server.publicKey, { now: TEST_NOW });
    await b.refused(toB, 'DEST_MISMATCH', ATTACKER_IP);
    await b.refused(toB, 'DEST_MISMATCH');
  });

  test('a knock never delivered to A, re-encrypted to B, is refused as DEST_MISMATCH too', async () => {
    const forA = await a.knock(alice);
    const inner = await decryptToPackets(forA, a.server.privateKey, TEST_NOW);
    await b.refused(await encryptPackets(inner, b.server.publicKey, { now: TEST_NOW }), 'DEST_MISMATCH');
  });

  test('a knock encrypted to both A and B (two session keys) opens only at the server it names', async () => {
    const forA = await a.knock(alice);
    const inner = await decryptToPackets(forA, a.server.privateKey, TEST_NOW);
    const both = await encryptPackets(inner, [a.server.publicKey, b.server.publicKey], { now: TEST_NOW });
    await b.refused(both, 'DEST_MISMATCH');
    // A never saw this nonce, so at A it is a new, valid knock
    await granted(a, both);
  });
});
