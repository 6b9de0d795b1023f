/**
 * Tampering with a sealed knock, one byte at a time: every position flipped (XOR 0x01 and 0xff),
 * every truncation, bytes appended and prepended. open() must never accept a changed knock as a
 * different one, and must never throw anything but a SpaError; the codes must fit the part of
 * the packet that was hit (framing for headers, not-for-us for the key id, decryption failure for
 * the encrypted parts).
 *
 * openpgp.js does not check an MPI's bit count for exactness, so protocol/framing.ts does: a
 * flip of that count's low bit used to open to the very same knock. An old-format header still
 * re-frames a knock without the key (a multi-byte change), so raw bytes are not a replay
 * identity; the signed nonce is (replayKey).
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { type Opened, open, seal, serverIdentity } from '../../protocol/envelope.js';
import { replayKey } from '../../protocol/replay-key.js';
import { SpaError } from '../../protocol/errors.js';
import { PACKET_MIN_BYTES } from '../../protocol/limits.js';
import { freshPayload, type KeyKind, signerMap, TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';

interface Outcome {
  readonly position: number;
  readonly xor: number;
  readonly code: string;
  readonly opened?: Opened;
}

interface Fixture {
  readonly server: TestKey;
  readonly client: TestKey;
  readonly sealed: Uint8Array;
  readonly original: Opened;
  readonly run: (bytes: Uint8Array) => Promise<{ code: string; opened?: Opened }>;
}

async function fixture(kind: KeyKind): Promise<Fixture> {
  const [server, client] = await Promise.all([
    testKey(`tamper-server-${kind}`, { kind }),
    testKey(`tamper-client-${kind}`, { kind }),
  ]);
  const sealed = await seal(freshPayload({ server, now: TEST_NOW }), {
    signingKey: client.privateKey,
    serverKey: server.publicKey,
    now: TEST_NOW,
  });
  const opts = {
    server: await serverIdentity(server.privateKey),
    lookupSigner: signerMap([client]),
    now: TEST_NOW,
    maxSkewSeconds: 120,
  };
  const run = async (bytes: Uint8Array): Promise<{ code: string; opened?: Opened }> => {
    try {
      return { code: 'ok', opened: await open(bytes, opts) };
    } catch (e) {
      if (!(e instanceof SpaError)) {
        throw new assert.AssertionError({ message: `open() threw a non-SpaError: ${String(e)}` });
      }
      return { code: e.code };
    }
  };
  const original = (await run(sealed)).opened;
  assert.ok(original, 'the untouched knock opens');
  return { server, client, sealed, original, run };
}

async function flipEveryByte(f: Fixture): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (let position = 0; position < f.sealed.length; position++) {
    for (const xor of [0x01, 0xff]) {
      const b = f.sealed.slice();
      b[position] = (b[position] ?? 0) ^ xor;
      const r = await f.run(b);
      out.push({ position, xor, ...r });
    }
  }
  return out;
}

/** Where each part of a new-format PKESK + SEIPD knock lies, from its own length octets. */
function regions(b: Uint8Array): { pkeskBody: number; pkeskEnd: number; seipdBody: number } {
  assert.equal(b[0], 0xc1, 'new-format PKESK header');
  const len = b[1] ?? 0;
  assert.ok(len < 192, 'one-octet PKESK length');
  const pkeskEnd = 2 + len;
  assert.equal(b[pkeskEnd], 0xd2, 'new-format SEIPD header');
  const l1 = b[pkeskEnd + 1] ?? 0;
  const seipdBody = pkeskEnd + 1 + (l1 < 192 ? 1 : l1 < 224 ? 2 : 5);
  return { pkeskBody: 2, pkeskEnd, seipdBody };
}

/** Codes expected for a flip at this position of a v3 PKESK + v1 SEIPD knock. */
function expectedCodes(position: number, r: ReturnType<typeof regions>): readonly string[] {
  if (position < r.pkeskBody) return ['PKT_FRAMING']; // PKESK header
  if (position === r.pkeskBody) return ['PKT_FRAMING']; // PKESK version
  if (position <= r.pkeskBody + 8) return ['PKT_NOT_FOR_US']; // key id
  // algorithm octet, MPI bit count, lengths: the framing check judges their shape before any
  // decryption (PKT_FRAMING); a flip that keeps the shape reaches decryption and fails there
  if (position < r.pkeskEnd) return ['DECRYPT_FAILED', 'PKT_FRAMING'];
  if (position <= r.seipdBody) return ['PKT_FRAMING']; // SEIPD header and version
  return ['DECRYPT_FAILED']; // ciphertext, integrity-protected
}

function sameKnock(a: Opened, b: Opened): boolean {
  return (
    replayKey(a.signer.fingerprint, a.payload.nonce) === replayKey(b.signer.fingerprint, b.payload.nonce) &&
    JSON.stringify({ ...a.payload, nonce: [...a.payload.nonce] }) ===
      JSON.stringify({ ...b.payload, nonce: [...b.payload.nonce] })
  );
}

for (const kind of ['ecc', 'v6'] as const) {
  describe(`tampering with a sealed ${kind === 'ecc' ? 'v4 Ed25519/Curve25519' : 'v6 Ed25519/X25519'} knock`, () => {
    let f: Fixture;
    let flips: Outcome[];

    before(async () => {
      f = await fixture(kind);
      flips = await flipEveryByte(f);
    });

    test('no one-byte change is accepted as a different knock, and none throws a non-SpaError', () => {
      assert.equal(flips.length, 2 * f.sealed.length);
      for (const o of flips) {
        if (o.code === 'ok') {
          assert.ok(
            o.opened && sameKnock(o.opened, f.original),
            `byte ${o.position}^${o.xor} opened to another knock`,
          );
        }
      }
    });

    test('every one-byte change is refused', () => {
      const accepted = flips
        .filter((o) => o.code === 'ok')
        .map((o) => `${o.position}^0x${o.xor.toString(16)}`);
      assert.deepEqual(accepted, []);
    });

    test('each refusal carries the code of the part that was hit', () => {
      const r = regions(f.sealed);
      const wrong = flips
        .filter((o) => o.code !== 'ok' && !expectedCodes(o.position, r).includes(o.code))
        .map((o) => `${o.position}^${o.xor}:${o.code}`);
      assert.deepEqual(wrong, []);
      const seen = new Set(flips.map((o) => o.code));
      for (const code of ['PKT_FRAMING', 'PKT_NOT_FOR_US', 'DECRYPT_FAILED']) assert.ok(seen.has(code), code);
    });

    test('every truncation is refused: too short below 64 bytes, framing above', async () => {
      for (let n = 0; n < f.sealed.length; n++) {
        const { code } = await f.run(f.sealed.subarray(0, n));
        assert.equal(code, n < PACKET_MIN_BYTES ? 'PKT_TOO_SHORT' : 'PKT_FRAMING', `prefix of ${n} bytes`);
      }
    });

    test('one or sixteen bytes appended, or one byte prepended, are refused as framing errors', async () => {
      const cat = (a: ArrayLike<number>, b: ArrayLike<number>) =>
        Uint8Array.from([...Array.from(a), ...Array.from(b)]);
      for (const extra of [
        [0x00],
        [0xd2],
        new Array(16).fill(0x00),
        Array.from({ length: 16 }, (_, i) => i * 17),
      ]) {
        assert.equal((await f.run(cat(f.sealed, extra))).code, 'PKT_FRAMING', `appended ${extra.length}`);
      }
      for (const first of [0x00, 0xc1, 0xff, 0x84]) {
        assert.equal(
          (await f.run(cat([first], f.sealed))).code,
          'PKT_FRAMING',
          `prepended 0x${first.toString(16)}`,
        );
      }
    });
  });
}

describe('re-framing a knock without the key', () => {
  test('an old-format header on the session key packet opens to the same knock, with the same replay key', async () => {
    const f = await fixture('ecc');
    const b = f.sealed.slice();
    assert.equal(b[0], 0xc1);
    b[0] = 0x84; // old format, tag 1, one-octet length: same length byte follows
    const r = await f.run(b);
    assert.equal(r.code, 'ok');
    assert.ok(r.opened && sameKnock(r.opened, f.original), 'bytes differ, knock and replay key do not');
  });

  test('a session key packet whose MPI bit count was changed, keeping its byte length, is refused (ECDH and RSA)', async () => {
    for (const kind of ['ecc', 'rsa2048'] as const) {
      const f = await fixture(kind);
      const bodyStart = f.sealed[0] === 0xc1 && (f.sealed[1] ?? 0) < 192 ? 2 : 3;
      const at = bodyStart + 1 + 8 + 1; // after version, key id, algorithm
      const bits = ((f.sealed[at] ?? 0) << 8) | (f.sealed[at + 1] ?? 0);
      const bytes = Math.ceil(bits / 8);
      // another bit count that reads the same number of bytes
      const other = bits === (bytes - 1) * 8 + 1 ? bytes * 8 : (bytes - 1) * 8 + 1;
      const b = f.sealed.slice();
      b[at] = other >> 8;
      b[at + 1] = other & 0xff;
      assert.notEqual((await f.run(b)).code, 'ok', `${kind}: MPI bit count ${bits} rewritten as ${other}`);
    }
  });
});
