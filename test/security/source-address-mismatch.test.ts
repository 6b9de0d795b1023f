/**
 * Attack: the payload names an address other than the one the datagram came from (to open the
 * port for a third party, or for an address the sender does not hold), or asks for "any".
 * With require_source_address on (the default) both are refused; the SOURCE CIDRs of a user are
 * checked against the datagram's source whatever the payload says.
 */
import { before, describe, test } from 'node:test';
import { parseAddress } from '../../protocol/address.js';
import { type TestKey, testKey } from '../helpers/keys.js';
import { CLIENT_IP, granted, type Rig, recordFor, rig } from './rig.js';

describe('a source address in the payload differing from the packet’s', () => {
  let r: Rig;
  let alice: TestKey;
  before(async () => {
    alice = await testKey('sec-alice');
    r = await rig({ server: await testKey('sec-server'), records: [recordFor(alice)] });
  });

  test('a payload naming 203.0.113.9, sent from 198.51.100.2, is refused as SOURCE_MISMATCH', async () => {
    await r.refused(await r.knock(alice, { source: parseAddress('203.0.113.9') }), 'SOURCE_MISMATCH');
  });

  test('a payload naming the client’s address, sent from another address, is refused as SOURCE_MISMATCH', async () => {
    await r.refused(
      await r.knock(alice, { source: parseAddress(CLIENT_IP) }),
      'SOURCE_MISMATCH',
      '198.51.100.77',
    );
  });

  test('an IPv6 payload address on an IPv4 datagram, and the reverse, are refused as SOURCE_MISMATCH', async () => {
    await r.refused(await r.knock(alice, { source: parseAddress('2001:db8::2') }), 'SOURCE_MISMATCH');
    await r.refused(
      await r.knock(alice, { source: parseAddress(CLIENT_IP) }),
      'SOURCE_MISMATCH',
      '2001:db8::2',
    );
  });

  test('"any" is refused as SOURCE_ANY_REFUSED when the user must name the source', async () => {
    await r.refused(await r.knock(alice, { source: 'any' }), 'SOURCE_ANY_REFUSED');
  });

  test('the IPv4-mapped IPv6 form of the same address is not a mismatch, and the IPv4 address is opened', async () => {
    await granted(r, await r.knock(alice), `::ffff:${CLIENT_IP}`, CLIENT_IP);
  });

  test('a NAT user may name another address, but a datagram from outside the SOURCE CIDRs is refused as SOURCE_NOT_ALLOWED', async () => {
    const nat = await rig({
      server: r.server,
      records: [recordFor(alice, { requireSourceAddress: false, sources: ['198.51.100.0/24'] })],
    });
    await granted(
      nat,
      await nat.knock(alice, { source: parseAddress('203.0.113.9') }),
      CLIENT_IP,
      '203.0.113.9',
    );
    await nat.refused(
      await nat.knock(alice, { source: parseAddress('198.51.100.2') }),
      'SOURCE_NOT_ALLOWED',
      '203.0.113.50',
    );
    await nat.refused(await nat.knock(alice, { source: 'any' }), 'SOURCE_NOT_ALLOWED', '2001:db8::2');
  });
});
