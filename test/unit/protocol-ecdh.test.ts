/**
 * The native X25519 session-key path (protocol/ecdh.ts) must agree with openpgp.js exactly, on
 * many packets and several server keys (scalars with leading zero bytes included by chance), and
 * must refuse what openpgp.js refuses.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { decryptEcdhSessionKey, prepareEcdh } from '../../protocol/ecdh.js';
import { testKey } from '../helpers/keys.js';

async function pkeskOf(serverPublic: openpgp.PublicKey): Promise<openpgp.PublicKeyEncryptedSessionKeyPacket> {
  const bytes = (await openpgp.encrypt({
    message: await openpgp.createMessage({ binary: new Uint8Array(32) }),
    encryptionKeys: serverPublic,
    format: 'binary',
  })) as Uint8Array;
  const m = await openpgp.readMessage({ binaryMessage: bytes });
  return m.packets[0] as openpgp.PublicKeyEncryptedSessionKeyPacket;
}

describe('native ECDH session key decryption', () => {
  test('gives the same session key as openpgp.js for 200 packets across 5 Curve25519 server keys', async () => {
    for (let k = 0; k < 5; k++) {
      const server = await testKey(`ecdh-server-${k}`);
      const [dk] = await server.privateKey.getDecryptionKeys();
      const fast = prepareEcdh(dk?.keyPacket);
      assert.ok(fast, 'a v4 curve25519 key gets the fast path');
      for (let i = 0; i < 40; i++) {
        const pkesk = await pkeskOf(server.publicKey);
        const mine = decryptEcdhSessionKey(fast, pkesk);
        const theirs = pkesk as unknown as {
          decrypt(k: unknown): Promise<void>;
          sessionKey: Uint8Array;
          sessionKeyAlgorithm: number;
        };
        await theirs.decrypt(dk?.keyPacket);
        assert.deepEqual(mine.data, theirs.sessionKey);
        assert.equal(mine.algorithm, openpgp.enums.read(openpgp.enums.symmetric, theirs.sessionKeyAlgorithm));
      }
    }
  });

  test('refuses a wrapped key with any byte changed, and an ephemeral point for another key', async () => {
    const server = await testKey('ecdh-server-0');
    const [dk] = await server.privateKey.getDecryptionKeys();
    const fast = prepareEcdh(dk?.keyPacket);
    assert.ok(fast);
    const pkesk = (await pkeskOf(server.publicKey)) as unknown as {
      encrypted: { V: Uint8Array; C: { data: Uint8Array } };
    };
    const c = pkesk.encrypted.C.data;
    for (let i = 0; i < c.length; i++) {
      const copy = structuredClone(pkesk);
      const data = copy.encrypted.C.data;
      data[i] = (data[i] ?? 0) ^ 0x01;
      Object.assign(copy, { version: 3, publicKeyAlgorithm: 18 });
      assert.throws(() => decryptEcdhSessionKey(fast, copy), `byte ${i}`);
    }
    const other = (await pkeskOf((await testKey('ecdh-other')).publicKey)) as unknown;
    assert.throws(() => decryptEcdhSessionKey(fast, other));
  });

  test('v6 X25519 and RSA keys keep openpgp.js (no fast path)', async () => {
    for (const kind of ['v6', 'rsa2048'] as const) {
      const k = await testKey(`ecdh-none-${kind}`, { kind });
      const [dk] = await k.privateKey.getDecryptionKeys();
      assert.equal(prepareEcdh(dk?.keyPacket), null, kind);
    }
  });
});
