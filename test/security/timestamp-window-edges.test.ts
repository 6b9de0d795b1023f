/**
 * Attack: knocks held back or pre-dated to the very edge of the freshness window (default
 * ±120 s). Just inside opens; one second outside is refused, for the payload timestamp
 * (TS_TOO_OLD / TS_IN_FUTURE) and for the signature creation time (SIG_TIME) alike.
 */
import { before, describe, test } from 'node:test';
import { type TestKey, testKey } from '../helpers/keys.js';
import { granted, type Rig, recordFor, rig } from './rig.js';

describe('timestamps at the edges of the freshness window', () => {
  let r: Rig;
  let alice: TestKey;
  const now = () => Math.floor(r.clock / 1000);
  before(async () => {
    alice = await testKey('sec-alice');
    r = await rig({ server: await testKey('sec-server'), records: [recordFor(alice)] });
  });

  test('a payload timestamp 120 s old or 120 s ahead opens', async () => {
    await granted(r, await r.knock(alice, { timestamp: now() - 120 }));
    await granted(r, await r.knock(alice, { timestamp: now() + 120 }));
  });

  test('a payload timestamp 121 s old is refused as TS_TOO_OLD, 121 s ahead as TS_IN_FUTURE', async () => {
    await r.refused(await r.knock(alice, { timestamp: now() - 121 }), 'TS_TOO_OLD');
    await r.refused(await r.knock(alice, { timestamp: now() + 121 }), 'TS_IN_FUTURE');
  });

  test('far-off timestamps (0, 2^53 − 1) are refused the same way', async () => {
    await r.refused(await r.knock(alice, { timestamp: 0 }), 'TS_TOO_OLD');
    await r.refused(await r.knock(alice, { timestamp: Number.MAX_SAFE_INTEGER }), 'TS_IN_FUTURE');
  });

  test('a signature made 120 s before or after now opens; 121 s either way is refused as SIG_TIME', async () => {
    const at = (s: number) => new Date(r.clock + s * 1000);
    await granted(r, await r.knock(alice, { signedAt: at(-120) }));
    await granted(r, await r.knock(alice, { signedAt: at(120) }));
    await r.refused(await r.knock(alice, { signedAt: at(-121) }), 'SIG_TIME');
    await r.refused(await r.knock(alice, { signedAt: at(121) }), 'SIG_TIME');
  });

  test('a server configured with a 30 s window refuses 31 s and opens 30 s', async () => {
    const narrow = await rig({ server: r.server, records: [recordFor(alice)], maxSkewSeconds: 30 });
    const t = Math.floor(narrow.clock / 1000);
    await granted(narrow, await narrow.knock(alice, { timestamp: t - 30 }));
    await narrow.refused(await narrow.knock(alice, { timestamp: t - 31 }), 'TS_TOO_OLD');
    await narrow.refused(await narrow.knock(alice, { timestamp: t + 31 }), 'TS_IN_FUTURE');
  });
});
