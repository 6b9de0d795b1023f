/**
 * Attack (issue #10, item 7): a restricted command leaks what should be bounded. A failed grant,
 * a failed run-as lookup or a spawn that throws kept the user's command slot, so the user got
 * CMD_BUSY until spad restarted; and a command's descendants outlived its time limit (a child
 * put in the background with its output redirected, or one that ignores SIGTERM).
 *
 * These run the real command runner (server/commands.ts) with real processes as `nobody`, a
 * recording firewall and an in-memory audit log; they need root (to run as nobody).
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { memoryAudit } from '../../server/audit.js';
import { createCommandRunner } from '../../server/commands.js';
import { COMMAND_NPROC } from '../../server/limits.js';
import type { Firewall } from '../../server/firewall/types.js';
import { alive, ctx, decision, NOBODY, notRoot, runAndReadPid, until } from './command-fixtures.js';
import { recordingFirewall } from '../helpers/firewall.js';
import { tempDir } from './rig.js';

describe('a restricted command that fails to start gives its slot back', { skip: notRoot }, () => {
  let work: string;
  before(() => {
    work = tempDir();
    chmodSync(work, 0o777);
  });

  function runner(fw: () => Firewall, lookup = async () => NOBODY) {
    const audit = memoryAudit();
    return { audit, r: createCommandRunner({ audit, maxPerUser: 1, firewall: fw, lookup }) };
  }

  async function runsAfterwards(r: ReturnType<typeof runner>['r'], audit: ReturnType<typeof memoryAudit>) {
    assert.equal(r.running(), 0, 'a slot is still taken');
    await r.run(decision('/bin/true'), ctx);
    await r.settled();
    const line = audit.lines.at(-1);
    assert.equal(line?.event, 'command');
    assert.equal(line?.exit, 0);
  }

  test('a command whose firewall grant fails: the next command runs, not CMD_BUSY', async () => {
    let broken = true;
    const fw = recordingFirewall();
    const failing: Firewall = {
      ...fw,
      grant: async (g) => {
        if (broken) throw new Error('nft: exit 1');
        return fw.grant(g);
      },
    };
    const { r, audit } = runner(() => failing);
    const withPorts = decision('/bin/true', { ports: [{ proto: 'tcp', port: 22 }] });
    for (let i = 0; i < 3; i++) await assert.rejects(r.run(withPorts, ctx), /nft: exit 1/);
    broken = false;
    await runsAfterwards(r, audit);
  });

  test('a command whose run-as lookup throws: the next command runs, not CMD_BUSY', async () => {
    let broken = true;
    const { r, audit } = runner(recordingFirewall, async () => {
      if (broken) throw new Error('getent: spawn EAGAIN');
      return NOBODY;
    });
    for (let i = 0; i < 3; i++) await assert.rejects(r.run(decision('/bin/true'), ctx));
    broken = false;
    await runsAfterwards(r, audit);
  });

  // Node's spawn throws (instead of emitting 'error') for EPERM, EINVAL and a uid it refuses;
  // a run-as user with a uid of 2^31 or more (some NSS setups have them) is the simple way in.
  const badUid = async () => ({ uid: 2 ** 31, gid: 65534 });

  test('a command whose spawn throws: logged as could not start, the next command runs', async () => {
    let broken = true;
    const { r, audit } = runner(recordingFirewall, async () => (broken ? badUid() : NOBODY));
    // three in a row: a slot kept by a failed spawn would make the last one CMD_BUSY (and throw)
    for (let i = 0; i < 3; i++) {
      await r.run(decision('/bin/true'), ctx);
      await r.settled();
    }
    const ends = audit.lines.filter((l) => l.event === 'command');
    assert.equal(ends.length, 3);
    for (const l of ends) assert.match(String(l.detail), /^could not start: /);
    broken = false;
    await runsAfterwards(r, audit);
  });

  test('without prlimit no command runs unbounded: logged as could not start, slot given back', async () => {
    const audit = memoryAudit();
    const r = createCommandRunner({
      audit,
      maxPerUser: 1,
      firewall: recordingFirewall,
      lookup: async () => NOBODY,
      prlimit: join(work, 'no-prlimit'),
    });
    for (let i = 0; i < 2; i++) {
      await r.run(decision('/bin/true'), ctx);
      await r.settled();
      assert.match(String(audit.lines.at(-1)?.detail), /^could not start: spawn .*no-prlimit ENOENT/);
    }
    assert.equal(r.running(), 0);
  });

  test('a command whose grant succeeded but whose spawn throws closes the ports again', async () => {
    const fw = recordingFirewall();
    const { r } = runner(() => fw, badUid);
    await r.run(decision('/bin/true', { ports: [{ proto: 'tcp', port: 22 }] }), ctx).catch(() => {});
    await r.settled();
    assert.deepEqual(
      fw.grants.map((g) => g.timeoutSeconds),
      [15, 1],
    );
  });
});

describe("a restricted command's descendants do not outlive it", { skip: notRoot }, () => {
  let work: string;
  let script: string;
  before(() => {
    work = tempDir();
    chmodSync(work, 0o777);
    script = join(work, 'bg-run');
    // a background child with its output redirected (so it does not hold spad's pipes open),
    // `stubborn`: one that ignores SIGTERM while the script itself does not; then exit at once,
    // or wait beyond the time limit
    writeFileSync(
      script,
      [
        '#!/bin/sh',
        'if [ "$1" = stubborn ]; then (trap "" TERM; exec sleep 60) >/dev/null 2>&1 </dev/null &',
        'else sleep 60 >/dev/null 2>&1 </dev/null & fi',
        `echo $! > ${work}/bg.$1.pid`,
        'if [ "$2" = wait ]; then sleep 30; fi',
        'exit 0',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
  });

  function leftBehind(args: string, timeoutSeconds: number): Promise<number> {
    return runAndReadPid(`${script} ${args}`, timeoutSeconds, join(work, `bg.${args.split(' ')[0]}.pid`));
  }

  test('a background child of a command that exits at once is killed when the command ends', async () => {
    const pid = await leftBehind('plain now', 10);
    assert.ok(await until(() => !alive(pid), 3000), `pid ${pid} still runs after the command ended`);
  });

  test('a descendant that ignores SIGTERM is killed with SIGKILL at the time limit', async () => {
    const pid = await leftBehind('stubborn wait', 1);
    assert.ok(await until(() => !alive(pid), 5000), `pid ${pid} still runs after the time limit`);
  });

  test('a descendant that leaves the group (setsid) and holds the output open does not hold the slot', async () => {
    // It is not killed (SECURITY.md "Command argv confusion": only a cgroup would reach it), but
    // spad stops reading its pipes soon after the command exits, logs, and frees the slot.
    const escape = join(work, 'escape');
    writeFileSync(escape, `#!/bin/sh\nsetsid sleep 60 &\necho $! > ${work}/escape.pid\n`, { mode: 0o755 });
    const audit = memoryAudit();
    const r = createCommandRunner({
      audit,
      maxPerUser: 1,
      firewall: recordingFirewall,
      lookup: async () => NOBODY,
    });
    let pid = 0;
    try {
      await r.run(decision(escape), ctx);
      const done = await Promise.race([
        r.settled().then(() => true),
        new Promise<boolean>((res) => setTimeout(() => res(false), 10_000)),
      ]);
      pid = Number(readFileSync(join(work, 'escape.pid'), 'utf8'));
      assert.ok(done, 'the command was still running 10 s after it exited');
      assert.equal(audit.lines.at(-1)?.exit, 0);
      assert.equal(r.running(), 0);
    } finally {
      if (pid > 1 && alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  test('a command runs with rlimits: no core dumps, CPU time and process count bounded', async () => {
    const audit = memoryAudit();
    const r = createCommandRunner({
      audit,
      maxPerUser: 2,
      firewall: recordingFirewall,
      lookup: async () => NOBODY,
    });
    await r.run(decision('/bin/cat /proc/self/limits', { timeoutSeconds: 7 }), ctx);
    await r.settled();
    const out = String(audit.lines.at(-1)?.stdout);
    const limit = (name: string): string[] =>
      (new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, 'm').exec(out) ?? []).slice(1, 3);
    assert.deepEqual(limit('Max core file size'), ['0', '0']);
    assert.deepEqual(limit('Max cpu time'), ['9', '9']); // the time limit and the kill grace
    assert.deepEqual(limit('Max processes'), [String(COMMAND_NPROC), String(COMMAND_NPROC)]);
  });
});
