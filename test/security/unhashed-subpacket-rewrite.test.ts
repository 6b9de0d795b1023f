/**
 * Attack: the unhashed area of a signature is not covered by the signature, so whoever can see
 * the signed packets (the server they were meant for, or a server they were re-encrypted to) may
 * add, change or drop subpackets there, re-encrypt, and send "new" bytes. This must never yield a
 * second grant for one signed knock, nor let the rewrite name another enrolled signer.
 *
 * openpgp.js writes the issuer key id and fingerprint in the hashed area and leaves the unhashed
 * area empty, but it reads an unhashed Issuer Fingerprint / Issuer Key ID subpacket after the
 * hashed ones, so a rewritten one takes effect: these tests pin what the server then does.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { concat, decryptToPackets, encryptPackets, splitPackets } from '../helpers/craft.js';
import { TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { hexToBytes } from '../../protocol/payload.js';
import { ATTACKER_IP, granted, type Rig, recordFor, rig } from './rig.js';

const SUB_ISSUER_KEY_ID = 16;
const SUB_NOTATION = 20;
const SUB_ISSUER_FPR = 33;

function subpacket(type: number, body: Uint8Array): Uint8Array {
  if (body.length + 1 >= 192) throw new Error('subpacket too long for this helper');
  return concat(Uint8Array.of(body.length + 1, type), body);
}

function newFormat(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  if (n < 192) return concat(Uint8Array.of(0xc0 | tag, n), body);
  if (n < 8384) return concat(Uint8Array.of(0xc0 | tag, ((n - 192) >> 8) + 192, (n - 192) & 0xff), body);
  throw new Error('packet too long for this helper');
}

function bodyOf(raw: Uint8Array): Uint8Array {
  const l1 = raw[1] ?? 0;
  return raw.subarray(l1 < 192 ? 2 : 3);
}

/** A v4 signature packet with its unhashed area replaced by `unhashed` (encoded subpackets). */
function withUnhashed(sigRaw: Uint8Array, unhashed: Uint8Array): Uint8Array {
  const body = bodyOf(sigRaw);
  assert.equal(body[0], 4, 'v4 signature');
  const hashedLen = ((body[4] ?? 0) << 8) | (body[5] ?? 0);
  const at = 6 + hashedLen;
  const oldLen = ((body[at] ?? 0) << 8) | (body[at + 1] ?? 0);
  const rest = body.subarray(at + 2 + oldLen);
  return newFormat(
    2,
    concat(body.subarray(0, at), Uint8Array.of(unhashed.length >> 8, unhashed.length & 0xff), unhashed, rest),
  );
}

/** A v3 one-pass signature packet naming another key id. */
function opsNaming(opsRaw: Uint8Array, keyId: Uint8Array): Uint8Array {
  const body = Uint8Array.from(bodyOf(opsRaw));
  assert.equal(body[0], 3, 'v3 one-pass signature');
  body.set(keyId, 4);
  return newFormat(4, body);
}

describe('changed unhashed signature subpackets', () => {
  let r: Rig;
  let alice: TestKey;
  let bob: TestKey;
  let mallory: TestKey;
  before(async () => {
    const server = await testKey('sec-server');
    alice = await testKey('sec-alice');
    bob = await testKey('sec-bob');
    mallory = await testKey('sec-mallory');
    r = await rig({ server, records: [recordFor(alice), recordFor(bob, { username: 'bob' })] });
  });

  /** Alice's knock, decrypted, rewritten by `edit`, re-encrypted to the same server. */
  async function rewritten(
    knock: Uint8Array,
    edit: (p: { ops: Uint8Array; lit: Uint8Array; sig: Uint8Array }) => Uint8Array[],
  ): Promise<Uint8Array> {
    const packets = splitPackets(await decryptToPackets(knock, r.server.privateKey, TEST_NOW));
    assert.deepEqual(
      packets.map((p) => p.tag),
      [4, 11, 2],
    );
    const [ops, lit, sig] = packets.map((p) => p.bytes) as [Uint8Array, Uint8Array, Uint8Array];
    return encryptPackets(concat(...edit({ ops, lit, sig })), r.server.publicKey, { now: TEST_NOW });
  }

  const notation = subpacket(
    SUB_NOTATION,
    concat(Uint8Array.of(0x80, 0, 0, 0, 0, 1, 0, 1), Uint8Array.of(0x78, 0x79)),
  );
  const fprOf = (k: TestKey) => concat(Uint8Array.of(4), hexToBytes(k.fingerprint));
  const idOf = (k: TestKey) => hexToBytes(k.fingerprint.slice(-16));

  test('an extra unhashed subpacket makes new bytes but the same knock: refused as REPLAY after the original', async () => {
    const original = await r.knock(alice);
    const variant = await rewritten(original, ({ ops, lit, sig }) => [ops, lit, withUnhashed(sig, notation)]);
    assert.notDeepEqual(variant, original);
    await granted(r, original);
    await r.refused(variant, 'REPLAY', ATTACKER_IP);
  });

  test('whichever arrives first wins once: the rewritten one first, then the original is REPLAY', async () => {
    const original = await r.knock(alice);
    const variant = await rewritten(original, ({ ops, lit, sig }) => [
      ops,
      lit,
      withUnhashed(sig, concat(notation, subpacket(SUB_ISSUER_FPR, fprOf(alice)))),
    ]);
    await granted(r, variant);
    await r.refused(original, 'REPLAY');
  });

  test('an unhashed issuer fingerprint naming another enrolled key is refused as MSG_STRUCTURE (the one-pass signature still names alice)', async () => {
    const original = await r.knock(alice);
    await r.refused(
      await rewritten(original, ({ ops, lit, sig }) => [
        ops,
        lit,
        withUnhashed(sig, subpacket(SUB_ISSUER_FPR, fprOf(bob))),
      ]),
      'MSG_STRUCTURE',
    );
  });

  test('the same rewrite with the one-pass signature relabelled too is checked against bob’s key and refused as SIG_INVALID', async () => {
    const original = await r.knock(alice, { username: 'bob' });
    await r.refused(
      await rewritten(original, ({ ops, lit, sig }) => [
        opsNaming(ops, idOf(bob)),
        lit,
        withUnhashed(sig, subpacket(SUB_ISSUER_FPR, fprOf(bob))),
      ]),
      'SIG_INVALID',
    );
  });

  test('an unhashed issuer fingerprint naming a key nobody enrolled is refused as SIGNER_UNKNOWN', async () => {
    const original = await r.knock(alice);
    await r.refused(
      await rewritten(original, ({ ops, lit, sig }) => [
        opsNaming(ops, idOf(mallory)),
        lit,
        withUnhashed(sig, subpacket(SUB_ISSUER_FPR, fprOf(mallory))),
      ]),
      'SIGNER_UNKNOWN',
    );
  });

  test('an unhashed issuer key id naming bob is refused as MSG_STRUCTURE, and with the one-pass signature relabelled as SIG_INVALID', async () => {
    const original = await r.knock(alice);
    const sub = subpacket(SUB_ISSUER_KEY_ID, idOf(bob));
    await r.refused(
      await rewritten(original, ({ ops, lit, sig }) => [ops, lit, withUnhashed(sig, sub)]),
      'MSG_STRUCTURE',
    );
    await r.refused(
      await rewritten(original, ({ ops, lit, sig }) => [
        opsNaming(ops, idOf(bob)),
        lit,
        withUnhashed(sig, sub),
      ]),
      'SIG_INVALID',
    );
    // none of the rewrites above used up the knock: the original still opens, once
    await granted(r, original);
  });
});
