/**
 * open()'s node:crypto path for the default profile (protocol/native-open.ts) must read exactly
 * the packets openpgp.js reads, decline everything else so that openpgp.js decides it, and
 * refuse by itself only what openpgp.js refuses too (DECRYPT_FAILED).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { open, seal, serverIdentity, signedBytes } from '../../protocol/envelope.js';
import { isSpaError } from '../../protocol/errors.js';
import { nativeOpen } from '../../protocol/native-open.js';
import { nativeSeal, parseNativeRecipient, parseNativeSigner } from '../../protocol/native-seal.js';
import { encodePayload } from '../../protocol/payload.js';
import { craftKnock, decryptToPackets, splitPackets } from '../helpers/craft.js';
import { freshPayload, signerMap, TEST_NOW, testKey } from '../helpers/keys.js';

const now = TEST_NOW;
const config = { ...openpgp.config };

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isSpaError(e) ? e.code : `non-spa error: ${(e as Error).message}`;
  }
}

describe('native open (default profile)', () => {
  test('reads the same OPS, literal and signature bytes as openpgp.js, from seal() and nativeSeal()', async () => {
    const [server, alice] = [await testKey('native-open-server'), await testKey('native-open-alice')];
    const identity = await serverIdentity(server.privateKey);
    const signer = parseNativeSigner(alice.armoredPrivate, now);
    const recipient = parseNativeRecipient(server.armoredPublic, now);
    assert.ok(signer && recipient);
    for (let i = 0; i < 40; i++) {
      const payload = freshPayload({ server, now });
      const knock: Uint8Array =
        i % 2 === 0
          ? await seal(payload, { signingKey: alice.privateKey, serverKey: server.publicKey, now })
          : nativeSeal(encodePayload(payload), signer, recipient, now, {
              sessionKey: new Uint8Array(randomBytes(32)),
              ephemeral: new Uint8Array(randomBytes(32)),
              prefix: new Uint8Array(randomBytes(16)),
              salt: new Uint8Array(randomBytes(32)),
            });
      const mine = (await nativeOpen(knock, identity, config)).packets;
      assert.ok(mine, `knock ${i}: the default profile takes the native path`);
      const theirs = splitPackets(await decryptToPackets(knock, server.privateKey, now));
      assert.deepEqual(
        theirs.map((p) => p.tag),
        [4, 11, 2],
      );
      const got = signedBytes({
        literal: mine.literal,
        signature: mine.signature,
        signingKeyFingerprint: '',
      });
      // splitPackets keeps headers; the bodies of these short packets follow a 2-octet header
      assert.deepEqual(got.literal, theirs[1]?.bytes.subarray(2), `knock ${i}: literal`);
      assert.deepEqual(got.signature, theirs[2]?.bytes.subarray(2), `knock ${i}: signature`);
      assert.equal(
        await codeOf(
          open(knock, { server: identity, lookupSigner: signerMap([alice]), now, maxSkewSeconds: 120 }),
        ),
        'accepted',
      );
    }
  });

  test('declines compressed, unsigned, doubly signed and non-default-key knocks; open() still decides them', async () => {
    const [server, alice, bob] = [
      await testKey('native-open-server'),
      await testKey('native-open-alice'),
      await testKey('native-open-bob'),
    ];
    const identity = await serverIdentity(server.privateKey);
    const opts = { server: identity, lookupSigner: signerMap([alice, bob]), now, maxSkewSeconds: 120 };
    const data = encodePayload(freshPayload({ server, now }));
    const cases: Array<[string, Uint8Array, string]> = [
      [
        'zlib-compressed (gpg default)',
        await craftKnock(data, {
          signers: [alice.privateKey],
          to: server.publicKey,
          now,
          compression: 'zlib',
        }),
        'accepted',
      ],
      ['unsigned', await craftKnock(data, { signers: [], to: server.publicKey, now }), 'SIG_MISSING'],
      [
        'signed twice',
        await craftKnock(data, { signers: [alice.privateKey, bob.privateKey], to: server.publicKey, now }),
        'SIG_MULTIPLE',
      ],
    ];
    for (const [label, knock, code] of cases) {
      assert.equal((await nativeOpen(knock, identity, config)).packets, null, label);
      assert.equal(await codeOf(open(knock, opts)), code, label);
    }
    for (const kind of ['v6', 'rsa2048'] as const) {
      const other = await testKey(`native-open-server-${kind}`, { kind });
      const id = await serverIdentity(other.privateKey);
      const knock = await seal(freshPayload({ server: other, now }), {
        signingKey: alice.privateKey,
        serverKey: other.publicKey,
        now,
      });
      assert.equal((await nativeOpen(knock, id, config)).packets, null, kind);
      assert.equal(
        await codeOf(open(knock, { ...opts, server: id })),
        'accepted',
        `${kind}: the openpgp.js path still opens it`,
      );
    }
  });

  test('a knock with a ciphertext byte flipped is DECRYPT_FAILED, natively too where the MDC is hit', async () => {
    const [server, alice] = [await testKey('native-open-server'), await testKey('native-open-alice')];
    const identity = await serverIdentity(server.privateKey);
    const opts = { server: identity, lookupSigner: signerMap([alice]), now, maxSkewSeconds: 120 };
    const knock = await seal(freshPayload({ server, now }), {
      signingKey: alice.privateKey,
      serverKey: server.publicKey,
      now,
    });
    // The SEIPD packet is last. In CFB a flipped ciphertext byte flips its plaintext byte and
    // garbles the next block: in the last 20 bytes (the SHA-1 of the MDC) that reaches neither the
    // MDC header nor anything the native path reads first, so it must itself refuse. Earlier
    // bytes may garble the MDC header, which the native path leaves to openpgp.js.
    for (let back = 60; back >= 1; back--) {
      const bad = Uint8Array.from(knock);
      const at = knock.length - back;
      bad[at] = (bad[at] ?? 0) ^ 0x40;
      if (back <= 20)
        assert.equal(
          await codeOf(nativeOpen(bad, identity, config)),
          'DECRYPT_FAILED',
          `byte -${back}: native`,
        );
      assert.equal(await codeOf(open(bad, opts)), 'DECRYPT_FAILED', `byte -${back}: open()`);
    }
  });

  test('a v6 session key packet ahead of a valid v3 one: decided as the openpgp.js path decides, not opened natively', async () => {
    const [server, alice] = [await testKey('native-open-server'), await testKey('native-open-alice')];
    const identity = await serverIdentity(server.privateKey);
    const knock = await seal(freshPayload({ server, now }), {
      signingKey: alice.privateKey,
      serverKey: server.publicKey,
      now,
    });
    // v6 PKESK naming our v4 encryption subkey by fingerprint, ECDH fields well formed, key garbage
    const fpr = Buffer.from(server.publicKey.getSubkeys()[0]?.getFingerprint() ?? '', 'hex');
    assert.equal(fpr.length, 20);
    const body = Buffer.concat([
      Uint8Array.of(6, 21, 4),
      fpr,
      Uint8Array.of(18, 0x01, 0x07, 0x40),
      randomBytes(32),
      Uint8Array.of(40),
      randomBytes(40),
    ]);
    const v6 = Buffer.concat([Uint8Array.of(0xc1, body.length), body]);
    const both = Buffer.concat([v6, knock]);
    assert.equal((await nativeOpen(both, identity, config)).packets, null);
    assert.equal(
      await codeOf(
        open(both, { server: identity, lookupSigner: signerMap([alice]), now, maxSkewSeconds: 120 }),
      ),
      'DECRYPT_FAILED',
    );
  });
});
