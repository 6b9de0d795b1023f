/**
 * Fault: an admin edits keyring.json by hand while spad runs and leaves it broken: invalid JSON,
 * valid JSON that breaks the schema, the file moved away. spad must keep the last good keyring
 * (alice still gets in), say why in a reload_failed audit line, and take the next good file.
 */
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { netnsUnavailable } from '../../scripts/netns.js';
import { type FaultRig, faultRig } from './faults-harness.js';
import { sendRaw } from './spad-harness.js';

const skip = await netnsUnavailable();

describe('a keyring edited by hand into something invalid while spad runs', { skip: skip ?? false }, () => {
  let rig: FaultRig;
  let file = '';
  let good = '';

  before(async () => {
    rig = await faultRig({ config: { rate_burst: 1000, rate_per_second: 1000 } });
    file = join(rig.keys.stateDir, 'keyring.json');
    good = readFileSync(file, 'utf8');
  });
  after(async () => rig?.close());

  /** Knocks as alice from the client; returns the audit line (grant or drop). */
  async function knock(): Promise<{ event: string; reason?: string }> {
    const [k] = await rig.knocks(1);
    const mark = rig.spad.lines.length;
    await sendRaw(rig.topo.client, rig.topo.server.ipv4, Buffer.from(k as string, 'hex'));
    return rig.spad.waitFor((l) => l.event === 'grant' || l.event === 'drop', 5000, mark);
  }

  async function edit(change: () => void): Promise<string> {
    const mark = rig.spad.lines.length;
    change();
    const l = await rig.spad.waitFor((x) => x.event === 'reload' || x.event === 'reload_failed', 5000, mark);
    return `${l.event}: ${String(l.detail ?? '')}`;
  }

  test('invalid JSON written in place: reload_failed, the last good keyring is kept, alice still opens', async () => {
    const what = await edit(() => writeFileSync(file, good.slice(0, good.length / 2)));
    assert.match(what, /^reload_failed: .*not valid JSON.*keeping the last good keyring \(1 keys?\)/);
    assert.equal((await knock()).event, 'grant');
    assert.equal(((await rig.control('status')) as { users: number }).users, 1);
  });

  test('valid JSON that breaks the schema: reload_failed naming the field, alice still opens', async () => {
    const bad = JSON.parse(good) as { keys: Record<string, { openPorts: string[] }> };
    for (const r of Object.values(bad.keys)) r.openPorts = ['tcp/0'];
    const what = await edit(() => writeFileSync(file, JSON.stringify(bad)));
    assert.match(what, /^reload_failed: .*openPorts/);
    assert.equal((await knock()).event, 'grant');
  });

  test('the keyring moved away: reload_failed, alice still opens', async () => {
    const what = await edit(() => renameSync(file, `${file}.moved`));
    assert.match(what, /^reload_failed: /);
    assert.equal((await knock()).event, 'grant');
    renameSync(`${file}.moved`, file);
  });

  test('the next good file is taken: alice disabled by hand is refused as KEY_DISABLED', async () => {
    const next = JSON.parse(good) as { keys: Record<string, { enabled: boolean }> };
    for (const r of Object.values(next.keys)) r.enabled = false;
    const what = await edit(() => {
      writeFileSync(`${file}.new`, JSON.stringify(next, null, 2));
      renameSync(`${file}.new`, file);
    });
    assert.match(what, /^reload: /);
    const l = await knock();
    assert.deepEqual([l.event, l.reason], ['drop', 'KEY_DISABLED']);
  });
});
