/**
 * Fault: spad's state directory fills up, or becomes read-only, while it runs. spad must keep
 * enforcing (grants for valid knocks, replays refused from memory, the port closed to everyone
 * else) and say so (a persist_error audit line, `replayPersisting: false` in `spad status`), then
 * notice when the disk is usable again. The state dir is a small tmpfs mounted for this test
 * (a temp dir, unmounted in `after`), holding a copy of the server key and keyring.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { netnsUnavailable, run } from '../../scripts/netns.js';
import { type FaultRig, faultRig } from './faults-harness.js';
import { sendRaw } from './spad-harness.js';

const skip = await netnsUnavailable();

describe('a full or read-only state directory', { skip: skip ?? false }, () => {
  let rig: FaultRig;
  let mount = '';
  let mounted = false;
  let fullKnock = '';

  before(async () => {
    rig = await faultRig({ config: { rate_burst: 1000, rate_per_second: 1000 }, autostart: false });
    mount = mkdtempSync(join(tmpdir(), 'spa-state-tmpfs-'));
    const m = await run('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', mount]);
    assert.equal(m.code, 0, m.stderr);
    mounted = true;
    for (const f of ['server.key', 'server.asc', 'keyring.json']) {
      cpSync(join(rig.keys.stateDir, f), join(mount, f), { preserveTimestamps: true });
    }
    await rig.start(mount);
  });

  after(async () => {
    await rig?.spad?.stop();
    if (mounted) await run('umount', ['-l', mount]);
    if (mount) rmSync(mount, { recursive: true, force: true });
    await rig?.close();
  });

  /** Sends a fresh knock from the client and waits for its grant; returns its hex. */
  async function knock(): Promise<string> {
    const [k] = await rig.knocks(1);
    const mark = rig.spad.lines.length;
    await sendRaw(rig.topo.client, rig.topo.server.ipv4, Buffer.from(k as string, 'hex'));
    await rig.spad.waitFor((l) => l.event === 'grant' || l.event === 'drop', 5000, mark);
    assert.equal(rig.since(mark, 'grant').length, 1, JSON.stringify(rig.spad.lines.slice(mark)));
    return k as string;
  }

  async function replayRefused(hex: string): Promise<void> {
    const mark = rig.spad.lines.length;
    await sendRaw(rig.topo.attacker, rig.topo.server.ipv4, Buffer.from(hex, 'hex'));
    const l = await rig.spad.waitFor((x) => x.event === 'drop' || x.event === 'grant', 5000, mark);
    assert.equal(l.reason, 'REPLAY_RAW');
  }

  const persisting = async () =>
    ((await rig.control('status')) as { replayPersisting: boolean }).replayPersisting;

  test('with the disk full, valid knocks still open, replays are still refused, and spad says it cannot persist', async () => {
    await knock(); // the replay file gets its first page while there is room
    await run('dd', ['if=/dev/zero', `of=${join(mount, 'filler')}`, 'bs=4096']); // until ENOSPC
    const mark = rig.spad.lines.length;
    for (let i = 0; i < 40 && rig.since(mark, 'persist_error').length === 0; i++) fullKnock = await knock();
    const err = rig.since(mark, 'persist_error');
    assert.equal(err.length, 1, 'no persist_error audit line');
    console.log(`persist_error: ${String(err[0]?.detail)}`);
    assert.equal(await persisting(), false);
    fullKnock = await knock();
    await replayRefused(fullKnock);
    assert.equal(await rig.ssh('attacker'), 'closed');
  });

  test('with space again, spad persists again and says so', async () => {
    rmSync(join(mount, 'filler'));
    const mark = rig.spad.lines.length;
    await knock();
    assert.equal(rig.since(mark, 'persist_ok').length, 1, 'no persist_ok audit line');
    assert.equal(await persisting(), true);
  });

  test('a knock accepted after the disk recovered is still refused after a restart', async () => {
    const k = await knock();
    await rig.spad.stop();
    await rig.start(mount);
    await replayRefused(k);
  });

  test('a knock accepted while the disk was full, replayed from its own source after a restart, is refused', async () => {
    const mark = rig.spad.lines.length;
    await sendRaw(rig.topo.client, rig.topo.server.ipv4, Buffer.from(fullKnock, 'hex'));
    const l = await rig.spad.waitFor((x) => x.event === 'drop' || x.event === 'grant', 5000, mark);
    assert.equal(l.reason, 'REPLAY_RAW', `the replay got: ${l.event} ${String(l.reason ?? '')}`);
  });

  test('with the state dir read-only, valid knocks still open and replays are refused; read-write again is noticed', async () => {
    const r = await run('mount', ['-o', 'remount,ro', mount]);
    assert.equal(r.code, 0, r.stderr);
    const mark = rig.spad.lines.length;
    let k = '';
    for (let i = 0; i < 40 && rig.since(mark, 'persist_error').length === 0; i++) k = await knock();
    assert.equal(rig.since(mark, 'persist_error').length, 1, 'no persist_error audit line');
    assert.equal(await persisting(), false);
    await replayRefused(k);
    assert.equal(await rig.ssh('attacker'), 'closed');
    await run('mount', ['-o', 'remount,rw', mount]);
    await knock();
    assert.equal(rig.since(mark, 'persist_ok').length, 1);
  });
});
