import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import * as openpgp from 'openpgp';
import { open, seal, serverIdentity } from '../../protocol/envelope.js';
import { ParseError } from '../../protocol/errors.js';
import { isForUs, parseFraming } from '../../protocol/framing.js';
import { encodePayload } from '../../protocol/payload.js';
import { freshPayload, signerMap, TEST_NOW, type TestKey, testKey, testServer } from '../helpers/keys.js';

/** A packet as tag + body, for re-framing real packets in every header form. */
interface Pkt {
  tag: number;
  body: Uint8Array;
}

/** Splits new-format, fixed-length packets (what openpgp.js writes for a small message). */
function split(b: Uint8Array): Pkt[] {
  const out: Pkt[] = [];
  let o = 0;
  while (o < b.length) {
    const first = b[o++] ?? 0;
    assert.equal(first & 0xc0, 0xc0, 'test helper expects new-format headers');
    const l1 = b[o++] ?? 0;
    let len: number;
    if (l1 < 192) len = l1;
    else if (l1 < 224) len = ((l1 - 192) << 8) + (b[o++] ?? 0) + 192;
    else {
      assert.equal(l1, 255, 'test helper expects no partial lengths');
      len = new DataView(b.buffer, b.byteOffset + o, 4).getUint32(0);
      o += 4;
    }
    out.push({ tag: first & 0x3f, body: b.slice(o, o + len) });
    o += len;
  }
  return out;
}

const cat = (...parts: ArrayLike<number>[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

/** New-format header with the length written in 1, 2 or 5 octets (when the length allows it). */
function newPkt(p: Pkt, octets: 1 | 2 | 5 = 5): Uint8Array {
  const n = p.body.length;
  let len: number[];
  if (octets === 1) {
    assert.ok(n < 192);
    len = [n];
  } else if (octets === 2) {
    assert.ok(n >= 192 && n < 8384);
    len = [((n - 192) >> 8) + 192, (n - 192) & 0xff];
  } else len = [255, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  return cat([0xc0 | p.tag], len, p.body);
}

/** Old-format header: length type 0 (1 octet), 1 (2), 2 (4) or 3 (indeterminate). */
function oldPkt(p: Pkt, lt: 0 | 1 | 2 | 3): Uint8Array {
  assert.ok(p.tag < 16);
  const n = p.body.length;
  const len =
    lt === 0
      ? [n]
      : lt === 1
        ? [n >> 8, n & 0xff]
        : lt === 2
          ? [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]
          : [];
  return cat([0x80 | (p.tag << 2) | lt], len, p.body);
}

/** New-format body split into partial chunks of 2^pow bytes, the last chunk with a fixed length. */
function partialPkt(p: Pkt, pow: number): Uint8Array {
  const parts: ArrayLike<number>[] = [[0xc0 | p.tag]];
  let o = 0;
  const size = 1 << pow;
  while (p.body.length - o > size) {
    parts.push([0xe0 | pow], p.body.subarray(o, o + size));
    o += size;
  }
  const rest = p.body.subarray(o);
  parts.push(newPkt({ tag: p.tag, body: rest }).subarray(1));
  return cat(...parts);
}

function framingError(bytes: Uint8Array, code = 'PKT_FRAMING'): ParseError {
  let caught: unknown;
  try {
    parseFraming(bytes);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ParseError, `expected a ParseError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

let server: TestKey;
let client: TestKey;
let other: TestKey;
let sealed: Uint8Array;
let pkesk: Pkt;
let seipd: Pkt;
let ourIds: ReadonlySet<string>;

before(async () => {
  [server, client, other] = await Promise.all([testKey('server'), testKey('client'), testKey('other')]);
  sealed = await seal(freshPayload({ server, now: TEST_NOW }), {
    signingKey: client.privateKey,
    serverKey: server.publicKey,
    now: TEST_NOW,
  });
  const parts = split(sealed);
  assert.deepEqual(
    parts.map((p) => p.tag),
    [1, 18],
  );
  [pkesk, seipd] = parts as [Pkt, Pkt];
  ourIds = (await testServer(server)).recipientKeyIds;
});

describe('OpenPGP framing', () => {
  test('a sealed knock is one v3 session key packet for the server key and one v1 encrypted data packet', () => {
    const f = parseFraming(sealed);
    assert.equal(f.seipdVersion, 1);
    assert.equal(f.recipients.length, 1);
    assert.equal(f.recipients[0]?.version, 3);
    assert.ok(isForUs(f, ourIds));
    assert.ok(ourIds.has(f.recipients[0]?.keyId ?? ''));
  });

  test('old-format headers with 1, 2 and 4 length octets read the same as the new format', () => {
    const want = parseFraming(sealed);
    for (const lt of [0, 1, 2] as const) {
      assert.deepEqual(parseFraming(cat(oldPkt(pkesk, lt), newPkt(seipd))), want, `old length type ${lt}`);
    }
  });

  test('new-format 1, 2 and 5 octet lengths read the same', () => {
    const want = parseFraming(sealed);
    assert.deepEqual(parseFraming(cat(newPkt(pkesk, 1), newPkt(seipd, 2))), want);
    assert.deepEqual(parseFraming(cat(newPkt(pkesk, 5), newPkt(seipd, 5))), want);
  });

  test('an encrypted data packet in partial body chunks is read, and the knock still opens', async () => {
    const want = parseFraming(sealed);
    for (const pow of [0, 4, 6, 8]) {
      const bytes = cat(newPkt(pkesk), partialPkt(seipd, pow));
      assert.deepEqual(parseFraming(bytes), want, `chunks of 2^${pow}`);
    }
    const bytes = cat(newPkt(pkesk), partialPkt(seipd, 6));
    const opened = await open(bytes, {
      server: await testServer(server),
      lookupSigner: signerMap([client]),
      now: TEST_NOW,
      maxSkewSeconds: 120,
    });
    assert.equal(opened.signer.fingerprint, client.fingerprint);
  });

  test('a partial body length on a session key packet is refused', () => {
    const bytes = cat(partialPkt(pkesk, 4), newPkt(seipd));
    assert.match(framingError(bytes).message, /partial length on packet tag 1/);
  });

  test('an old-format indeterminate length on the session key packet swallows the rest and is refused', () => {
    framingError(cat(oldPkt(pkesk, 3), newPkt(seipd)));
  });

  test('a partial chunk, a length or a body that runs past the end is refused', () => {
    const full = cat(newPkt(pkesk), partialPkt(seipd, 6));
    framingError(full.subarray(0, full.length - 1));
    // a partial chunk as the very last thing: its successor header is missing
    const chunked = partialPkt(seipd, 6);
    framingError(cat(newPkt(pkesk), chunked.subarray(0, 1 + 1 + 64)));
    for (const cut of [1, 2, 3, 4]) framingError(cat(newPkt(pkesk), newPkt(seipd, 5).subarray(0, cut)));
    for (const cut of [1, 2]) framingError(oldPkt(pkesk, 1).subarray(0, cut));
    for (const cut of [1, 2, 3, 4]) framingError(oldPkt(pkesk, 2).subarray(0, cut));
  });

  test('trailing bytes after the encrypted data packet are refused', () => {
    for (const extra of [[0], [0xc1], new Array(16).fill(0xa5)]) {
      const e = framingError(cat(sealed, extra));
      assert.equal(e.field, 'trailing');
    }
  });

  test('ASCII-armored input is refused as PKT_ARMORED', async () => {
    const armored = openpgp.armor(openpgp.enums.armor.message, sealed);
    framingError(new TextEncoder().encode(armored), 'PKT_ARMORED');
  });

  test('a knock encrypted to another key parses but is not for us', async () => {
    const theirs = await seal(freshPayload({ server: other, now: TEST_NOW }), {
      signingKey: client.privateKey,
      serverKey: other.publicKey,
      now: TEST_NOW,
    });
    assert.equal(isForUs(parseFraming(theirs), ourIds), false);
    assert.equal(isForUs(parseFraming(sealed), (await testServer(other)).recipientKeyIds), false);
  });

  test('a knock encrypted to several keys, ours among them, is for us', async () => {
    const data = encodePayload(freshPayload({ server, now: TEST_NOW }));
    const msg = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: data }),
      encryptionKeys: [other.publicKey, server.publicKey],
      format: 'binary',
      date: TEST_NOW,
    });
    const f = parseFraming(msg);
    assert.equal(f.recipients.length, 2);
    assert.ok(isForUs(f, ourIds));
  });

  test('four session key packets are accepted, five are refused', () => {
    const four = cat(...new Array(4).fill(newPkt(pkesk)), newPkt(seipd));
    assert.equal(parseFraming(four).recipients.length, 4);
    framingError(cat(...new Array(5).fill(newPkt(pkesk)), newPkt(seipd)));
  });

  test('an encrypted data packet with no session key packet is refused', () => {
    assert.match(framingError(newPkt(seipd)).message, /no session key packet/);
  });

  test('a password-encrypted session key packet (SKESK, tag 3) is refused, alone or beside ours', async () => {
    const data = await openpgp.createMessage({
      binary: encodePayload(freshPayload({ server, now: TEST_NOW })),
    });
    const pw = await openpgp.encrypt({
      message: data,
      passwords: 'hunter2',
      format: 'binary',
      date: TEST_NOW,
    });
    assert.equal((pw[0] ?? 0) & 0x3f, 3, 'openpgp.js wrote an SKESK first');
    framingError(pw);
    const both = await openpgp.encrypt({
      message: data,
      passwords: 'hunter2',
      encryptionKeys: server.publicKey,
      format: 'binary',
      date: TEST_NOW,
    });
    framingError(both);
  });

  test('marker (tag 10) and padding (tag 21) packets are refused wherever they appear', () => {
    const marker = newPkt({ tag: 10, body: Uint8Array.from([0x50, 0x47, 0x50]) }, 1);
    const oldMarker = oldPkt({ tag: 10, body: Uint8Array.from([0x50, 0x47, 0x50]) }, 0);
    const padding = newPkt({ tag: 21, body: new Uint8Array(16) }, 1);
    for (const extra of [marker, oldMarker, padding]) {
      framingError(cat(extra, sealed));
      framingError(cat(newPkt(pkesk), extra, newPkt(seipd)));
      framingError(cat(sealed, extra));
    }
  });

  test('literal, compressed, unprotected (tag 9) and AEAD (tag 20) data where encrypted data belongs are refused', () => {
    for (const tag of [8, 9, 11, 20, 2, 4, 60]) {
      framingError(cat(newPkt(pkesk), newPkt({ tag, body: seipd.body })));
    }
  });

  test('encrypted data packet versions other than 1 and 2 are refused', () => {
    for (const v of [0, 3, 5, 255]) {
      const body = seipd.body.slice();
      body[0] = v;
      framingError(cat(newPkt(pkesk), newPkt({ tag: 18, body })));
    }
  });

  test('session key packet versions other than 3 and 6, and short ones, are refused', () => {
    for (const v of [0, 2, 4, 5, 7]) {
      const body = pkesk.body.slice();
      body[0] = v;
      framingError(cat(newPkt({ tag: 1, body }), newPkt(seipd)));
    }
    framingError(cat(newPkt({ tag: 1, body: pkesk.body.subarray(0, 9) }), newPkt(seipd)));
    framingError(cat(newPkt({ tag: 1, body: Uint8Array.from([6]) }), newPkt(seipd)));
    framingError(cat(newPkt({ tag: 1, body: Uint8Array.from([6, 33, 6, 1, 2]) }), newPkt(seipd)));
    framingError(cat(newPkt({ tag: 1, body: new Uint8Array(0) }), newPkt(seipd)));
  });

  test('a v6 session key packet names a v6 key by the first 8 bytes of its fingerprint', async () => {
    const { privateKey } = await openpgp.generateKey({
      type: 'curve25519',
      userIDs: [{ name: 'aead', email: 'aead@example.test' }],
      date: TEST_NOW,
      config: { v6Keys: true, aeadProtect: true },
      format: 'object',
    });
    const data = await openpgp.createMessage({ binary: new Uint8Array(8) });
    const msg = await openpgp.encrypt({
      message: data,
      encryptionKeys: privateKey.toPublic(),
      format: 'binary',
      date: TEST_NOW,
      config: { aeadProtect: true },
    });
    const f = parseFraming(msg);
    assert.equal(f.seipdVersion, 2);
    assert.equal(f.recipients[0]?.version, 6);
    const sub = privateKey.getSubkeys()[0];
    assert.ok(sub);
    assert.equal(f.recipients[0]?.keyId, sub.getFingerprint().slice(0, 16).toUpperCase());
    const ids = (await serverIdentity(privateKey)).recipientKeyIds;
    assert.ok(isForUs(f, ids));
  });

  test('a v6 session key packet names a v4 key by the last 8 bytes of its fingerprint', async () => {
    // a v4 key announcing SEIPDv2 support gets v6 session key packets from openpgp.js
    const { privateKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: 'aead4', email: 'aead4@example.test' }],
      date: TEST_NOW,
      config: { aeadProtect: true },
      format: 'object',
    });
    assert.equal(privateKey.keyPacket.version, 4);
    const msg = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: new Uint8Array(8) }),
      encryptionKeys: privateKey.toPublic(),
      format: 'binary',
      date: TEST_NOW,
      config: { aeadProtect: true },
    });
    const f = parseFraming(msg);
    assert.equal(f.seipdVersion, 2);
    assert.equal(f.recipients[0]?.version, 6);
    const sub = privateKey.getSubkeys()[0];
    assert.ok(sub);
    assert.equal(f.recipients[0]?.keyId, sub.getFingerprint().slice(24).toUpperCase());
    assert.equal(f.recipients[0]?.keyId, sub.getKeyID().toHex().toUpperCase());
    assert.ok(isForUs(f, (await serverIdentity(privateKey)).recipientKeyIds));
  });

  test('anonymous recipients (wildcard key ids) are never for us', async () => {
    const data = await openpgp.createMessage({ binary: new Uint8Array(8) });
    const msg = await openpgp.encrypt({
      message: data,
      encryptionKeys: server.publicKey,
      wildcard: true,
      format: 'binary',
      date: TEST_NOW,
    });
    const f = parseFraming(msg);
    assert.equal(f.recipients[0]?.keyId, null);
    assert.equal(isForUs(f, ourIds), false);
    const v6anon = cat(
      // v6, anonymous, X25519: 32-octet ephemeral key, then a 16-octet wrapped key with its length
      newPkt({
        tag: 1,
        body: Uint8Array.from([
          6,
          0,
          25,
          ...new Array<number>(32).fill(9),
          16,
          ...new Array<number>(16).fill(7),
        ]),
      }),
      newPkt({ tag: 18, body: cat([2], new Uint8Array(40)) }),
    );
    const g = parseFraming(v6anon);
    assert.equal(g.recipients[0]?.keyId, null);
    assert.equal(isForUs(g, ourIds), false);
  });

  test('input that does not start with a packet header, or is empty, is refused', () => {
    framingError(new Uint8Array(0));
    framingError(Uint8Array.from([0x00, 0x01, 0x02]));
    framingError(cat([0x7f], sealed));
    framingError(new TextEncoder().encode('hello, this is not OpenPGP'));
  });

  test('no input makes parseFraming throw anything but a ParseError', () => {
    const mutate = fc
      .tuple(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.nat(),
      )
      .map(([edits, cut]) => {
        const b = sealed.slice(0, sealed.length - (cut % 8));
        for (const [at, v] of edits) b[at % b.length] = v;
        return b;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutate), (bytes) => {
        try {
          const f = parseFraming(bytes);
          assert.ok(f.recipients.length >= 1 && f.recipients.length <= 4);
          // arbitrary bytes: whichever of the two versions they carry, but no other
          assert.ok(f.seipdVersion === 1 || f.seipdVersion === 2);
        } catch (e) {
          assert.ok(e instanceof ParseError, `non-ParseError: ${String(e)}`);
        }
      }),
      { numRuns: 5000 },
    );
  });
});
