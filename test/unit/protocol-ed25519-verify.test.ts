/**
 * The native Ed25519 signature check (protocol/ed25519-verify.ts) decides as openpgp.js's
 * SignaturePacket.verify does: a good signature passes, and a signature with a changed R or S,
 * a changed digest prefix, a creation time after the moment judged, or made by another key is
 * refused by both. Other key kinds are not taken (openpgp.js decides for them).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { verifyEd25519Message } from '../../protocol/ed25519-verify.js';
import { testKey } from '../helpers/keys.js';

const config = { ...openpgp.config };

async function signed(name: string, opts: { kind?: 'ecc' | 'rsa2048' } = {}) {
  const k = await testKey(name, opts);
  const message = await openpgp.createMessage({ binary: new Uint8Array([1, 2, 3, 4]), format: 'binary' });
  const detached = await openpgp.sign({
    message,
    signingKeys: k.privateKey,
    detached: true,
    format: 'object',
  });
  const sig = detached.packets[0] as openpgp.SignaturePacket;
  const literal = message.packets[0] as openpgp.LiteralDataPacket;
  return { k, sig, literal, keyPacket: k.publicKey.keyPacket as openpgp.PublicKeyPacket };
}

/** The signature re-read after `edit` changed its serialization. */
function edited(sig: openpgp.SignaturePacket, edit: (b: Uint8Array) => void): openpgp.SignaturePacket {
  const bytes = (sig as unknown as { write(): Uint8Array }).write();
  edit(bytes);
  const out = new openpgp.SignaturePacket();
  (out as unknown as { read(b: Uint8Array, c: openpgp.Config): void }).read(bytes, config);
  return out;
}

/** What openpgp.js says: true, or the error. */
async function byOpenpgp(
  sig: openpgp.SignaturePacket,
  keyPacket: openpgp.PublicKeyPacket,
  literal: openpgp.LiteralDataPacket,
  at: Date,
): Promise<boolean> {
  try {
    await sig.verify(keyPacket, sig.signatureType as openpgp.enums.signature, literal, at, false, config);
    return true;
  } catch {
    return false;
  }
}

async function byNative(
  sig: openpgp.SignaturePacket,
  keyPacket: openpgp.PublicKeyPacket,
  literal: openpgp.LiteralDataPacket,
  at: Date,
): Promise<boolean> {
  try {
    assert.equal(
      await verifyEd25519Message(sig, keyPacket, literal, at, config),
      true,
      'taken by the native path',
    );
    return true;
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    return false;
  }
}

describe('native Ed25519 message signatures', () => {
  test('a good signature passes both', async () => {
    const { sig, literal, keyPacket } = await signed('ed-verify-a');
    const now = new Date();
    assert.equal(await byOpenpgp(sig, keyPacket, literal, now), true);
    assert.equal(await byNative(sig, keyPacket, literal, now), true);
  });

  test('a changed R, S or digest prefix is refused by both', async () => {
    const { sig, literal, keyPacket } = await signed('ed-verify-a');
    const now = new Date();
    const bytes = (sig as unknown as { write(): Uint8Array }).write();
    const n = bytes.length;
    // the body ends with the digest prefix, then R and S as MPIs of up to 32 octets each
    const prefix = Buffer.from(bytes).lastIndexOf(Buffer.from(sig.signedHashValue as Uint8Array), n - 64);
    assert.ok(prefix > n - 72, 'the digest prefix is where it should be');
    for (const at of [n - 1, n - 20, prefix + 20, prefix, prefix + 1]) {
      const bad = edited(sig, (b) => {
        b[at] = (b[at] ?? 0) ^ 0x04;
      });
      assert.equal(await byOpenpgp(bad, keyPacket, literal, now), false, `octet ${at}: openpgp.js`);
      assert.equal(await byNative(bad, keyPacket, literal, now), false, `octet ${at}: native`);
    }
  });

  test('other data, another key, a moment before the signature: refused by both', async () => {
    const { sig, literal, keyPacket } = await signed('ed-verify-a');
    const other = await signed('ed-verify-b');
    const now = new Date();
    // another key's packet under this signature (the issuer key id differs)
    assert.equal(await byOpenpgp(sig, other.keyPacket, literal, now), false);
    assert.equal(await byNative(sig, other.keyPacket, literal, now), false);
    // this key's signature over other bytes
    const changed = await openpgp.createMessage({ binary: new Uint8Array([1, 2, 3, 5]), format: 'binary' });
    const lit2 = changed.packets[0] as openpgp.LiteralDataPacket;
    assert.equal(await byOpenpgp(sig, keyPacket, lit2, now), false);
    assert.equal(await byNative(sig, keyPacket, lit2, now), false);
    const earlier = new Date((sig.created as Date).getTime() - 60_000);
    assert.equal(await byOpenpgp(sig, keyPacket, literal, earlier), false);
    assert.equal(await byNative(sig, keyPacket, literal, earlier), false);
  });

  test('an RSA key is left to openpgp.js', async () => {
    const { sig, literal, keyPacket } = await signed('ed-verify-rsa', { kind: 'rsa2048' });
    assert.equal(await verifyEd25519Message(sig, keyPacket, literal, new Date(), config), false);
  });
});
