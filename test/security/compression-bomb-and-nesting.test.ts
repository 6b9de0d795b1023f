/**
 * Attack: a knock whose compressed packet inflates far beyond anything a knock needs (a
 * decompression bomb), compression nested inside compression, deeply nested compressed packets,
 * and an encrypted message nested inside the encrypted message. Anyone with the server's public
 * key can make these; the limits are SPEC.md §3/§5 (decompressed data at most 4096 bytes,
 * protocol/limits.ts MAX_DECOMPRESSED_BYTES, enforced by protocol/compressed.ts, which inflates ZIP
 * and ZLIB itself and stops as soon as the output passes the limit).
 *
 * The code, and why: the decrypted packets are parsed, and compressed data inflated, after their
 * integrity check passed; an over-limit stream, a broken one, a second compressed packet, a
 * compressed packet inside a compressed packet, or a message inside the message all fail that
 * parse, which open() reports as MSG_STRUCTURE (SPEC.md §7 step 7), not as a decryption failure.
 * Algorithms other than ZIP and ZLIB are test/security/bzip2-compression-bomb.test.ts.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { deflateSync } from 'node:zlib';
import { MAX_DECOMPRESSED_BYTES } from '../../protocol/limits.js';
import { encodePayload } from '../../protocol/payload.js';
import { concat, craftKnock, encryptPackets, signedPackets } from '../helpers/craft.js';
import { freshPayload, TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { encryptRaw, granted, type Rig, recordFor, rig } from './rig.js';

/** `packets` wrapped in `depth` compressed packets (ZLIB), as binary. */
function compressed(packets: Uint8Array, depth: number): Uint8Array {
  let bytes = packets;
  for (let i = 0; i < depth; i++) {
    const body = concat(Uint8Array.of(2 /* ZLIB */), deflateSync(bytes));
    const n = body.length;
    const header =
      n < 192
        ? Uint8Array.of(0xc8, n)
        : Uint8Array.of(0xc8, 0xff, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    bytes = concat(header, body);
  }
  return bytes;
}

describe('compressed-data bombs and deeply nested packets', () => {
  let r: Rig;
  let alice: TestKey;
  let valid: Uint8Array;
  before(async () => {
    alice = await testKey('sec-alice');
    r = await rig({ server: await testKey('sec-server'), records: [recordFor(alice)] });
    valid = encodePayload(freshPayload({ server: r.server, now: TEST_NOW }));
  });

  test('a signed 256 KiB literal compressed into a small knock is refused as MSG_STRUCTURE (inflation stops at 4096 bytes)', async () => {
    const bomb = new Uint8Array(1 << 18);
    bomb.set(valid);
    const bytes = await craftKnock(bomb, {
      signers: [alice.privateKey],
      to: r.server.publicKey,
      now: TEST_NOW,
      compression: 'zlib',
    });
    assert.ok(bytes.length < 1400, `the bomb fits one datagram (${bytes.length} bytes)`);
    await r.refused(bytes, 'MSG_STRUCTURE');
  });

  test('a ZIP bomb just over the limit (4097 + bytes of signed packets) is refused as MSG_STRUCTURE', async () => {
    const data = new Uint8Array(MAX_DECOMPRESSED_BYTES + 1);
    data.set(valid);
    await r.refused(
      await craftKnock(data, {
        signers: [alice.privateKey],
        to: r.server.publicKey,
        now: TEST_NOW,
        compression: 'zip',
      }),
      'MSG_STRUCTURE',
    );
  });

  test('a compressed knock under the limit still opens (the limit is not a ban on compression)', async () => {
    await granted(
      r,
      await craftKnock(encodePayload(freshPayload({ server: r.server, now: TEST_NOW })), {
        signers: [alice.privateKey],
        to: r.server.publicKey,
        now: TEST_NOW,
        compression: 'zlib',
      }),
    );
  });

  async function nested(depth: number): Promise<Uint8Array> {
    const inner = await signedPackets(
      encodePayload(freshPayload({ server: r.server, now: TEST_NOW })),
      [alice.privateKey],
      { now: TEST_NOW },
    );
    const bytes = await encryptRaw(compressed(inner, depth), r.server.publicKey);
    assert.ok(bytes.length < 1400, `${bytes.length} bytes`);
    return bytes;
  }

  test('a single compressed layer built by this rig opens (the nesting below is what is refused)', async () => {
    await granted(r, await nested(1));
  });

  test('forty levels of nested compression are refused as MSG_STRUCTURE without exhausting anything', async () => {
    await r.refused(await nested(40), 'MSG_STRUCTURE');
  });

  test('two compressed packets side by side are refused as MSG_STRUCTURE (one compressed packet per knock)', async () => {
    const inner = await signedPackets(
      encodePayload(freshPayload({ server: r.server, now: TEST_NOW })),
      [alice.privateKey],
      { now: TEST_NOW },
    );
    const one = compressed(inner, 1);
    await r.refused(await encryptRaw(concat(one, one), r.server.publicKey), 'MSG_STRUCTURE');
  });

  test('a ZLIB stream whose checksum is wrong, or that is cut short, is refused as MSG_STRUCTURE', async () => {
    const inner = await signedPackets(
      encodePayload(freshPayload({ server: r.server, now: TEST_NOW })),
      [alice.privateKey],
      { now: TEST_NOW },
    );
    const bad = compressed(inner, 1);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
    await r.refused(await encryptRaw(bad, r.server.publicKey), 'MSG_STRUCTURE');
    const stream = deflateSync(inner);
    const cut = concat(Uint8Array.of(0xc8, 21, 2), stream.subarray(0, 20));
    await r.refused(await encryptRaw(cut, r.server.publicKey), 'MSG_STRUCTURE');
  });

  test('compression inside compression is refused as MSG_STRUCTURE', async () => {
    await r.refused(await nested(2), 'MSG_STRUCTURE');
  });

  test('a whole knock encrypted again inside the encryption is refused as MSG_STRUCTURE, and the inner knock still opens', async () => {
    const knock = await r.knock(alice);
    await r.refused(await encryptPackets(knock, r.server.publicKey, { now: TEST_NOW }), 'MSG_STRUCTURE');
    await granted(r, knock);
  });
});
