/**
 * protocol/fwknop.ts on crafted inputs: the plaintext grammar (what the real client cannot be
 * made to send, so test/vectors/fwknop cannot cover it) and the pre-decryption unwrap. The
 * real-client packets are in test/vectors/fwknop-vectors.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { SpaError } from '../../protocol/errors.js';
import { parseFraming } from '../../protocol/framing.js';
import { fwknopPayload, looksLikeFwknop, parseFwknopPlaintext, unwrapFwknop } from '../../protocol/fwknop.js';
import { VECTOR_DIR } from '../helpers/keys.js';

const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64').replace(/=+$/, '');
const digest = (alg: string, s: string): string =>
  createHash(alg).update(s, 'latin1').digest('base64').replace(/=+$/, '');

/** A plaintext as libfko encodes it, with its digest appended (SPEC.md §11.3). */
function plain(fields: readonly string[], alg = 'sha256'): Uint8Array {
  const enc = fields.join(':');
  return new Uint8Array(Buffer.from(`${enc}:${digest(alg, enc)}`, 'latin1'));
}
const base = (over: Partial<Record<number, string>> = {}): string[] => {
  const f = ['1234567890123456', b64('root'), '1796222638', '3.0.0', '1', b64('198.51.100.2,tcp/22')];
  for (const [i, v] of Object.entries(over)) f[Number(i)] = v ?? '';
  return f;
};

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof SpaError, String(e));
    return e.code;
  }
  return 'accepted';
}

describe('fwknop plaintext: parsed as strictly as fwknopd, or more', () => {
  test('a well-formed access message is accepted', () => {
    const m = parseFwknopPlaintext(plain(base()));
    assert.equal(m.type, 1);
    assert.equal(m.allowIp, '198.51.100.2');
    assert.deepEqual(m.access, [{ proto: 'tcp', port: 22 }]);
    assert.equal(m.username, 'root');
  });
  test('a changed field with the old digest is refused (inner digest verified)', () => {
    const good = Buffer.from(plain(base())).toString('latin1');
    const forged = good.replace('1796222638', '1796222639');
    assert.equal(
      code(() => parseFwknopPlaintext(new Uint8Array(Buffer.from(forged, 'latin1')))),
      'FWK_DIGEST',
    );
  });
  test('MD5 and SHA-1 inner digests are refused, SHA-384/512 and SHA3 accepted', () => {
    assert.equal(
      code(() => parseFwknopPlaintext(plain(base(), 'md5'))),
      'FWK_DIGEST',
    );
    assert.equal(
      code(() => parseFwknopPlaintext(plain(base(), 'sha1'))),
      'FWK_DIGEST',
    );
    for (const a of ['sha384', 'sha512', 'sha3-256', 'sha3-512'])
      assert.equal(parseFwknopPlaintext(plain(base(), a)).type, 1, a);
  });
  test('non-printable bytes anywhere are refused', () => {
    assert.equal(
      code(() => parseFwknopPlaintext(plain(base({ 3: '3.0.0\n' })))),
      'FWK_PLAINTEXT',
    );
    assert.equal(
      code(() => parseFwknopPlaintext(plain(base({ 5: b64('198.51.100.2,tcp/22\u0001') })))),
      'FWK_PLAINTEXT',
    );
  });
  test('field counts per type: extra server-auth field, missing timeout, timeout on type 1', () => {
    assert.equal(
      code(() => parseFwknopPlaintext(plain([...base(), b64('auth')]))),
      'FWK_PLAINTEXT',
    );
    assert.equal(
      code(() => parseFwknopPlaintext(plain(base({ 4: '3' })))),
      'FWK_PLAINTEXT',
    );
    assert.equal(parseFwknopPlaintext(plain([...base({ 4: '3' }), '45'])).clientTimeout, 45);
    assert.equal(
      code(() => parseFwknopPlaintext(plain([...base({ 4: '3' }), '65537']))),
      'FWK_PLAINTEXT',
    );
    assert.equal(
      code(() => parseFwknopPlaintext(plain([...base({ 4: '3' }), '045']))),
      'FWK_PLAINTEXT',
    );
    assert.equal(
      code(() => parseFwknopPlaintext(plain(base().slice(0, 5)))),
      'FWK_PLAINTEXT',
    );
  });
  test('NAT types are refused with their own code, unknown types as malformed', () => {
    for (const t of ['2', '4', '5', '6'])
      assert.equal(
        code(() => parseFwknopPlaintext(plain(base({ 4: t })))),
        'FWK_NAT_UNSUPPORTED',
        t,
      );
    assert.equal(
      code(() => parseFwknopPlaintext(plain(base({ 4: '7' })))),
      'FWK_PLAINTEXT',
    );
  });
  test('field grammars: random, username, timestamp, version, allow-IP, ports, base64', () => {
    const bad: Array<Partial<Record<number, string>>> = [
      { 0: '123456789012345' },
      { 0: '12345678901234567' },
      { 0: '123456789012345a' },
      { 1: b64('ro/ot') },
      { 1: b64('') },
      { 1: `${b64('root')}=` },
      { 1: 'cm9vdB' }, // non-zero unused bits: a second spelling of "root"
      { 2: '-1796222638' },
      { 2: '1234567890123' },
      { 3: '3.0' },
      { 3: 'x.y.z' },
      { 5: b64('198.51.100.02,tcp/22') },
      { 5: b64('198.51.100.256,tcp/22') },
      { 5: b64('::1,tcp/22') },
      { 5: b64('198.51.100.2,tcp/022') },
      { 5: b64('198.51.100.2,tcp/22,tcp/22') },
      { 5: b64('198.51.100.2,icmp/0') },
      { 5: b64('198.51.100.2,tcp/1-100') },
      { 5: b64('198.51.100.2') },
    ];
    for (const over of bad)
      assert.equal(
        code(() => parseFwknopPlaintext(plain(base(over)))),
        'FWK_PLAINTEXT',
        JSON.stringify(over),
      );
  });
  test('a command message keeps its text; an empty one is refused', () => {
    const m = parseFwknopPlaintext(plain(base({ 4: '0', 5: b64('198.51.100.2,uname -a') })));
    assert.equal(m.command, 'uname -a');
    assert.equal(
      code(() => parseFwknopPlaintext(plain(base({ 4: '0', 5: b64('198.51.100.2,') })))),
      'FWK_PLAINTEXT',
    );
  });
  test('payload: the enrolled username, REQUIRE_USERNAME, 0.0.0.0 as "any", nonce from the plaintext', () => {
    const pt = plain(base({ 5: b64('0.0.0.0,tcp/22') }));
    const m = parseFwknopPlaintext(pt);
    const ctx = { serverFingerprint: 'A'.repeat(40), username: 'alice', requireUsername: null };
    const p = fwknopPayload(m, pt, ctx);
    assert.equal(p.username, 'alice');
    assert.equal(p.source, 'any');
    assert.equal(
      code(() => fwknopPayload(m, pt, { ...ctx, requireUsername: 'bob' })),
      'USER_MISMATCH',
    );
    const other = plain(base({ 0: '1234567890123457', 5: b64('0.0.0.0,tcp/22') }));
    assert.notDeepEqual(fwknopPayload(parseFwknopPlaintext(other), other, ctx).nonce, p.nonce);
  });
});

describe('fwknop datagram: recognised and unwrapped before any decryption', () => {
  const v = JSON.parse(readFileSync(`${VECTOR_DIR}fwknop/ok-hmac-ecc.json`, 'utf8')) as {
    packet: string;
    signers: Array<{ hmac_key_base64: string }>;
  };
  const key = new Uint8Array(Buffer.from(v.signers[0]?.hmac_key_base64 ?? '', 'base64'));
  // the packet's own recipient (Curve25519: the lost prefix was "hF")
  const ours = parseFraming(new Uint8Array(Buffer.from(`hF${v.packet.slice(0, -43)}`, 'base64')));
  const recipientKeyIds = new Set(ours.recipients.map((r) => r.keyId ?? ''));
  const opts = (over = {}) => ({
    hmacKeys: [{ id: 'BOB', key }],
    acceptWithoutHmac: false,
    recipientKeyIds,
    ...over,
  });

  test('spa binary knocks are never read as fwknop', () => {
    const bin = new Uint8Array(600).fill(0x41);
    bin[0] = 0x85;
    assert.equal(looksLikeFwknop(bin), false);
    assert.equal(looksLikeFwknop(new Uint8Array(Buffer.from(v.packet, 'latin1'))), true);
    assert.equal(looksLikeFwknop(new Uint8Array(Buffer.from(`${v.packet}=`, 'latin1'))), false);
  });
  test('the HMAC is checked against the real first two characters; a wrong key is refused', () => {
    assert.equal(unwrapFwknop(v.packet, opts()).hmacKeyId, 'BOB');
    assert.equal(unwrapFwknop(v.packet, opts()).binary[0], 0x84);
    assert.equal(
      code(() => unwrapFwknop(v.packet, opts({ recipientKeyIds: new Set(['X']) }))),
      'PKT_NOT_FOR_US',
    );
    const wrong = new Uint8Array(key);
    wrong[0] = (wrong[0] ?? 0) ^ 1;
    assert.equal(
      code(() => unwrapFwknop(v.packet, opts({ hmacKeys: [{ id: 'X', key: wrong }] }))),
      'FWK_HMAC_INVALID',
    );
  });
  test('a tag over the packet with "hQ" put back (what fwknopd computes) does not match an ECC knock', () => {
    const body = v.packet.slice(0, -43);
    const hq = createHmac('sha256', key).update(`hQ${body}`).digest('base64').replace(/=+$/, '');
    assert.equal(
      code(() => unwrapFwknop(body + hq, opts())),
      'FWK_HMAC_INVALID',
    );
  });
  test('no fwknop user at all: refused before any work', () => {
    assert.equal(
      code(() => unwrapFwknop(v.packet, opts({ hmacKeys: [] }))),
      'FWK_NOT_ENABLED',
    );
  });
});
