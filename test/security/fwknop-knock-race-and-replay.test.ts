/**
 * Attacks on fwknop knocks through spad's pipeline (SPEC.md §11.4, §7 steps 5 and 13), with a
 * real fwknop-client packet (test/vectors/fwknop/ok-access-ecc.json, bob, allow-IP
 * 198.51.100.2): an on-path attacker races a copy from its own address (refused, and the copy
 * burns nothing), the genuine packet then opens, and every later copy is a replay, also across a
 * restart (a new pipeline on the same replay file); nobody enrolled with --fwknop means fwknop
 * text is not read at all.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { KeyRecord } from '../../keyring/index.js';
import { readTestKey, VECTOR_DIR } from '../helpers/keys.js';
import { ATTACKER_IP, CLIENT_IP, fwknopRecordFor, rig } from './rig.js';

const v = JSON.parse(readFileSync(`${VECTOR_DIR}fwknop/ok-access-ecc.json`, 'utf8')) as {
  now: string;
  server_key: string;
  packet: string;
  signers: Array<{ fingerprint: string; public_key: string }>;
};
const packet = new Uint8Array(Buffer.from(v.packet, 'latin1'));

const bob = (over: Partial<KeyRecord> = {}): Promise<KeyRecord> =>
  fwknopRecordFor(v.signers[0] as { fingerprint: string; public_key: string }, null, over);

describe('fwknop knocks: race, replay and restart', () => {
  test('a copy raced from the attacker is refused and burns nothing; the genuine knock opens; copies after it are replays, also after a restart', async () => {
    const server = await readTestKey('fwknop-vector-server', v.server_key);
    const now = new Date(v.now);
    const records = [await bob()];
    const a = await rig({ server, records, now });
    await a.refused(packet, 'SOURCE_MISMATCH', ATTACKER_IP);
    const ok = await a.send(packet, CLIENT_IP);
    assert.equal(ok.ok, true, JSON.stringify(a.audit.lines.at(-1)));
    assert.equal(a.firewall.grants.length, 1);
    assert.equal(a.firewall.grants[0]?.source, CLIENT_IP);
    assert.equal(a.audit.lines.find((l) => l.event === 'grant')?.kind, 'fwknop');
    await a.refused(packet, 'REPLAY_RAW', CLIENT_IP);
    // a restart: a new pipeline reading the same replay file
    const b = await rig({ server, records, now, replayFile: a.replayFile });
    await b.refused(packet, 'REPLAY_RAW', CLIENT_IP);
    assert.equal(b.firewall.grants.length, 0);
  });

  test('nobody enrolled with --fwknop: the same text is just not an OpenPGP message', async () => {
    const server = await readTestKey('fwknop-vector-server', v.server_key);
    const { fwknop: _off, ...plain } = await bob();
    const r = await rig({ server, records: [plain], now: new Date(v.now) });
    await r.refused(packet, 'PKT_FRAMING');
  });
});
