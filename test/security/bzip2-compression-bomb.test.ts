/**
 * Attack: the 4,096-byte cap on decompressed data bounds the output, not the work. A BZip2
 * compressed packet of a couple of hundred bytes costs openpgp.js's bzip2 decoder about 10 ms
 * (a valid knock about 1.3 ms) before the cap stops it, so a hundred such datagrams a second
 * from spoofed sources stall the pipeline. Anyone holding the server's public key can make them.
 *
 * What must hold (SPEC.md §3): only uncompressed data, ZIP (1) and ZLIB (2) are accepted, which
 * is what GnuPG writes by default; a compressed packet naming any other algorithm is refused as
 * MSG_COMPRESSION by its algorithm octet, before any decoder runs. The codes tell the two apart:
 * a bzip2 stream that the decoder had read would fail on the cap or on its garbage as
 * MSG_STRUCTURE. The cost per refused datagram is measured by scripts/bench-refused.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { before, describe, test } from 'node:test';
import { deflateSync } from 'node:zlib';
import { open, serverIdentity, type ServerIdentity } from '../../protocol/envelope.js';
import { encodePayload } from '../../protocol/payload.js';
import { concat, signedPackets } from '../helpers/craft.js';
import { freshPayload, TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { encryptRaw, granted, type Rig, recordFor, rig } from './rig.js';

const skip =
  spawnSync('bzip2', ['--help'], { stdio: 'ignore' }).error === undefined
    ? false
    : 'bzip2 is not installed (it makes the bzip2 streams)';

function bzip2(data: Uint8Array): Uint8Array {
  const r = spawnSync('bzip2', ['-c', '-9'], { input: data, maxBuffer: 1 << 20 });
  assert.equal(r.status, 0, String(r.stderr));
  return new Uint8Array(r.stdout);
}

/** A Compressed Data packet (tag 8, new format) with this algorithm octet and body. */
function compressedPacket(algorithm: number, body: Uint8Array): Uint8Array {
  const n = body.length + 1;
  const header =
    n < 192
      ? Uint8Array.of(0xc8, n)
      : n < 8384
        ? Uint8Array.of(0xc8, ((n - 192) >> 8) + 192, (n - 192) & 0xff)
        : Uint8Array.of(0xc8, 0xff, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
  return concat(header, Uint8Array.of(algorithm), body);
}

describe('BZip2 and unknown compression algorithms inside a knock', { skip }, () => {
  let r: Rig;
  let alice: TestKey;
  let identity: ServerIdentity;
  before(async () => {
    alice = await testKey('sec-alice');
    r = await rig({ server: await testKey('sec-server'), records: [recordFor(alice)] });
    identity = await serverIdentity(r.server.privateKey);
  });

  /** OPS, Literal, Signature by alice over `data` (default: a valid payload for this server). */
  function signed(data?: Uint8Array): Promise<Uint8Array> {
    return signedPackets(
      data ?? encodePayload(freshPayload({ server: r.server, now: TEST_NOW })),
      [alice.privateKey],
      {
        now: TEST_NOW,
      },
    );
  }

  const knockOf = async (inner: Uint8Array): Promise<Uint8Array> => {
    const bytes = await encryptRaw(inner, r.server.publicKey);
    assert.ok(bytes.length <= 1400, `${bytes.length} bytes`);
    return bytes;
  };

  const openDirect = (bytes: Uint8Array) =>
    open(bytes, {
      server: identity,
      lookupSigner: r.users().lookupSigner,
      now: TEST_NOW,
      maxSkewSeconds: 120,
    });

  test('a genuine knock by an enrolled key compressed with BZip2 (gpg --compress-algo bzip2) is refused as MSG_COMPRESSION and opens nothing', async () => {
    await r.refused(await knockOf(compressedPacket(3, bzip2(await signed()))), 'MSG_COMPRESSION');
  });

  test('a bzip2 bomb (a signed 4 MiB literal in a few hundred bytes) is refused as MSG_COMPRESSION, not by the 4096-byte cap (MSG_STRUCTURE)', async () => {
    const bomb = new Uint8Array(4 << 20);
    bomb.set(encodePayload(freshPayload({ server: r.server, now: TEST_NOW })));
    const packet = compressedPacket(3, bzip2(await signed(bomb)));
    assert.ok(packet.length < 1200, `${packet.length} bytes`);
    await r.refused(await knockOf(packet), 'MSG_COMPRESSION');
  });

  test('bzip2-named garbage is refused by its algorithm octet alone: MSG_COMPRESSION with no decoder error as its cause', async () => {
    const bytes = await knockOf(compressedPacket(3, new Uint8Array(200).fill(0x42)));
    await assert.rejects(openDirect(bytes), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'MSG_COMPRESSION');
      for (let c: unknown = e.cause; c instanceof Error; c = c.cause) {
        assert.doesNotMatch(c.message, /bzip|block|magic|crc/i, 'a bzip2 decoder ran');
      }
      return true;
    });
    await r.refused(bytes, 'MSG_COMPRESSION');
  });

  for (const algorithm of [3, 4, 99, 100, 110, 255]) {
    test(`a compressed packet naming algorithm ${algorithm} is refused as MSG_COMPRESSION`, async () => {
      await r.refused(
        await knockOf(compressedPacket(algorithm, deflateSync(await signed()))),
        'MSG_COMPRESSION',
      );
    });
  }

  test('an empty compressed packet (no algorithm octet) is refused as MSG_STRUCTURE', async () => {
    await r.refused(await knockOf(concat(Uint8Array.of(0xc8, 0), await signed())), 'MSG_STRUCTURE');
  });

  test('a BZip2 packet inside a ZLIB packet is refused as MSG_STRUCTURE (nesting is judged before the inner algorithm)', async () => {
    const inner = compressedPacket(3, bzip2(await signed()));
    await r.refused(await knockOf(compressedPacket(2, deflateSync(inner))), 'MSG_STRUCTURE');
  });

  test('ZIP, ZLIB and uncompressed knocks built the same way still open', async () => {
    await granted(r, await knockOf(await signed()));
    await granted(r, await knockOf(compressedPacket(2, deflateSync(await signed()))));
    const { deflateRawSync } = await import('node:zlib');
    await granted(r, await knockOf(compressedPacket(1, deflateRawSync(await signed()))));
  });
});
