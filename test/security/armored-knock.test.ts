/**
 * Attack (or a confused client): the knock sent as ASCII armor, or as bare base64 the way fwknop
 * sends its GPG packets, instead of binary OpenPGP. Refused before any decryption; the binary
 * form of the same knock still opens afterwards, so nothing was recorded by the refusals.
 */
import { before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { type TestKey, testKey } from '../helpers/keys.js';
import { granted, type Rig, recordFor, rig } from './rig.js';

describe('an armored instead of binary packet', () => {
  let r: Rig;
  let alice: TestKey;
  let knock: Uint8Array;
  before(async () => {
    alice = await testKey('sec-alice');
    r = await rig({ server: await testKey('sec-server'), records: [recordFor(alice)] });
    knock = await r.knock(alice);
  });

  const text = (s: string) => new TextEncoder().encode(s);

  test('an ASCII-armored knock is refused as PKT_ARMORED', async () => {
    await r.refused(text(openpgp.armor(openpgp.enums.armor.message, knock)), 'PKT_ARMORED');
  });

  test('an armored knock with CRLF line ends is refused as PKT_ARMORED', async () => {
    await r.refused(
      text(openpgp.armor(openpgp.enums.armor.message, knock).replace(/\n/g, '\r\n')),
      'PKT_ARMORED',
    );
  });

  test('armor preceded by a newline or a space is refused as PKT_FRAMING (not a packet header)', async () => {
    await r.refused(text(`\n${openpgp.armor(openpgp.enums.armor.message, knock)}`), 'PKT_FRAMING');
    await r.refused(text(` ${openpgp.armor(openpgp.enums.armor.message, knock)}`), 'PKT_FRAMING');
  });

  test('bare base64 of the knock, fwknop style (with or without its first two characters), is refused as PKT_FRAMING', async () => {
    const b64 = Buffer.from(knock).toString('base64').replace(/=+$/, '');
    await r.refused(text(b64), 'PKT_FRAMING');
    await r.refused(text(b64.slice(2)), 'PKT_FRAMING');
  });

  test('the binary knock itself still opens afterwards', async () => {
    await granted(r, knock);
  });
});
