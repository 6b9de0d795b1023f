/**
 * Fault: spad is SIGKILLed while it works through a burst of valid knocks mixed with garbage,
 * then started again. Nothing it granted may be lost while its window lasts, none of the knocks
 * it accepted may be accepted again, its state files must be readable, and its capture process
 * must not outlive it. Alice may name other addresses (NAT), so every knock opens its own
 * address (203.0.113.N) and each grant can be checked on its own. Both firewall backends.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readAllowlistFile } from '../../keyring/index.js';
import { blast, childPids, sealKnock } from '../../scripts/bench-lib.js';
import { netnsUnavailable, waitFor } from '../../scripts/netns.js';
import { type FaultRig, faultRig } from './faults-harness.js';

const skip = await netnsUnavailable();
const KNOCKS = 80;

function replayLines(stateDir: string): unknown[] {
  const file = join(stateDir, 'replay.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as unknown);
}

for (const backend of ['nftables', 'iptables'] as const) {
  describe(`spad SIGKILLed under load and restarted (${backend})`, { skip: skip ?? false }, () => {
    let rig: FaultRig;
    const byAddress = new Map<string, string>();
    let granted: string[] = [];
    /** Addresses whose knock spad had recorded in replay.jsonl when it died. */
    let persisted = new Set<string>();
    /** Replay key (SPEC.md §7 step 13: signer fingerprint and nonce) of each address's knock. */
    const keyOf = new Map<string, string>();

    before(async () => {
      rig = await faultRig({
        backend,
        config: { rate_burst: 1000, rate_per_second: 1000 },
        enroll: ['--open', 'tcp/22', '--timeout', '120', '--no-require-source'],
      });
    });
    after(async () => rig?.close());

    test('killed mid-burst, every grant made before the kill is still in place after the restart', async () => {
      const mark = rig.spad.lines.length;
      const knocks: string[] = [];
      for (let i = 1; i <= KNOCKS; i++) {
        const a = `203.0.113.${i}`;
        const k = await sealKnock(rig.alice.home, {
          user: 'alice',
          source: a,
          serverFingerprint: rig.keys.serverFingerprint,
        });
        knocks.push(k.hex, randomBytes(300).toString('hex'));
        byAddress.set(a, k.hex);
        keyOf.set(a, `${rig.alice.fingerprint}:${k.nonce}`);
      }
      const pid = rig.spad.proc.pid as number;
      const capture = childPids(pid);
      await blast(rig.topo.client, rig.topo.server.ipv4, knocks);
      assert.ok(
        await waitFor(async () => rig.since(mark, 'grant').length >= 10, 10_000, 2),
        'no grants before the kill',
      );
      await rig.spad.kill();
      granted = rig.since(mark, 'grant').map((l) => String(l.address));
      console.log(`spad killed after ${granted.length} of ${KNOCKS} grants`);
      assert.ok(granted.length < KNOCKS, 'the kill came after the whole burst: not under load');
      // its capture process ends with it (stdin closed)
      assert.ok(
        await waitFor(async () => capture.every((p) => !existsSync(`/proc/${p}`)), 5000, 50),
        `capture process(es) ${capture.join(',')} outlived spad`,
      );
      // every accepted knock was persisted before it was granted: the file parses line by line
      const lines = replayLines(rig.keys.stateDir) as Array<{ key: string; raw: string; expiresAt: number }>;
      assert.ok(lines.length >= granted.length, `${lines.length} replay lines for ${granted.length} grants`);
      for (const l of lines) assert.equal(typeof l.raw, 'string');
      const keys = new Set(lines.map((l) => l.key));
      persisted = new Set([...keyOf].filter(([, k]) => keys.has(k)).map(([a]) => a));
      console.log(
        `${persisted.size} knocks persisted as accepted, ${granted.length} grants in the audit log`,
      );
      assert.deepEqual(
        granted.filter((a) => !persisted.has(a)),
        [],
        'a grant whose replay entry was not persisted first',
      );
      await readAllowlistFile(rig.keys.stateDir);

      await rig.start();
      const list = (await rig.control('fw-list')) as Array<{ source: string; expiresAt: number }>;
      const live = new Set(list.filter((g) => g.expiresAt > Date.now()).map((g) => g.source));
      const lost = granted.filter((a) => !live.has(a));
      assert.deepEqual(lost, [], 'grants lost across the crash');
    });

    test('after the restart, all 80 knocks are sent again: none recorded before the kill is accepted again', async () => {
      const mark = rig.spad.lines.length;
      await blast(rig.topo.attacker, rig.topo.server.ipv4, [...byAddress.values()]);
      // drop lines are capped per reason and second (README "Audit log"): count the summaries too
      const judged = (): { grants: string[]; replayed: number; seen: Record<string, number> } => {
        const lines = rig.spad.lines.slice(mark);
        const seen: Record<string, number> = {};
        for (const l of lines)
          seen[`${l.event}:${l.reason ?? ''}`] = (seen[`${l.event}:${l.reason ?? ''}`] ?? 0) + 1;
        const replayed = lines.reduce(
          (n, l) =>
            l.reason !== 'REPLAY_RAW'
              ? n
              : l.event === 'drop'
                ? n + 1
                : l.event === 'drop_summary'
                  ? n + Number(l.suppressed)
                  : n,
          0,
        );
        return {
          grants: lines.filter((l) => l.event === 'grant').map((l) => String(l.address)),
          replayed,
          seen,
        };
      };
      const done = await waitFor(
        async () => {
          const j = judged();
          return j.grants.length + j.replayed >= KNOCKS;
        },
        15_000,
        20,
      );
      const { grants: regranted, replayed, seen } = judged();
      assert.ok(done, `not every knock was judged: ${JSON.stringify(seen)}`);
      assert.deepEqual(
        regranted.filter((a) => persisted.has(a)),
        [],
        'a knock accepted before the crash was accepted again',
      );
      assert.equal(replayed, persisted.size);
      // the knocks spad never got to before it died are new to it, so they may open (from the
      // attacker: alice may name any address), which is right
      assert.equal(regranted.length, KNOCKS - persisted.size);
    });

    test('the state files are valid after the restart, and the protected port is still closed to others', async () => {
      const lines = replayLines(rig.keys.stateDir) as Array<{ key: string; raw: string; expiresAt: number }>;
      assert.ok(lines.every((l) => typeof l.key === 'string' && typeof l.expiresAt === 'number'));
      assert.ok(lines.length >= granted.length);
      await readAllowlistFile(rig.keys.stateDir);
      assert.equal(await rig.ssh('attacker'), 'closed');
      assert.equal(await rig.ssh('client'), 'closed');
    });
  });
}
