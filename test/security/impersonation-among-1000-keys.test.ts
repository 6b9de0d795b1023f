/**
 * Attack: with 1,000 users enrolled (each with a key of their own), one user tries to pass as
 * another: naming the other's username, or knocking with a key nobody enrolled. The signer is
 * found by fingerprint among all of them, and only that key's record decides. (A signature
 * relabelled with another enrolled key's id and fingerprint: test/vectors/signer-forged-issuer.json
 * for open(), unenrolled-signer.test.ts for the pipeline. `npm run bench` times the same with
 * 10,000: scripts/bench-keys.ts.)
 */
import { before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { fromPrivateKey, type TestKey } from '../helpers/keys.js';
import { granted, type Rig, recordFor, rig } from './rig.js';
import { slow } from '../helpers/slow.js';

const USERS = 1000;

describe(`impersonation among ${USERS} enrolled keys`, slow, () => {
  let r: Rig;
  let keys: TestKey[];
  let stranger: TestKey;
  const name = (i: number) => `user${i}`;
  const knockBy = (i: number, over: Parameters<Rig['knock']>[1] = {}) =>
    r.knock(keys[i] as TestKey, { username: name(i), ...over });

  before(async () => {
    const make = async (n: string) =>
      fromPrivateKey(
        n,
        (
          await openpgp.generateKey({
            type: 'ecc',
            curve: 'curve25519Legacy',
            userIDs: [{ name: n }],
            date: new Date(Date.now() - 86_400_000),
            format: 'object',
          })
        ).privateKey,
      );
    keys = [];
    for (let i = 0; i < USERS; i++) keys.push(await make(name(i)));
    stranger = await make('stranger');
    const server = await make('server-1000');
    r = await rig({
      server,
      now: new Date(),
      records: keys.map((k, i) => recordFor(k, { username: name(i), enabled: i !== 700 })),
    });
  });

  test('the first and the last of 1,000 enrolled users each get in', async () => {
    await granted(r, await knockBy(0));
    await granted(r, await knockBy(USERS - 1));
  });

  test('user500 naming user501 is refused as USER_MISMATCH', async () => {
    await r.refused(await knockBy(500, { username: name(501) }), 'USER_MISMATCH');
  });

  test('a key none of the 1,000 records holds is refused as SIGNER_UNKNOWN, whatever username it names', async () => {
    await r.refused(await r.knock(stranger, { username: name(3) }), 'SIGNER_UNKNOWN');
  });

  test('user700, disabled, is refused as KEY_DISABLED while user699 and user701 get in', async () => {
    await r.refused(await knockBy(700), 'KEY_DISABLED');
    await granted(r, await knockBy(699));
    await granted(r, await knockBy(701));
  });
});
