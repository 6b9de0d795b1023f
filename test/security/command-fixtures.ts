/**
 * Shared fixtures of the restricted-command attack tests: a decision as the policy step makes it,
 * the run-as account `nobody`, and polling helpers for processes that should be gone.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAddress } from '../../protocol/address.js';
import type { Decision } from '../../protocol/policy.js';
import { memoryAudit } from '../../server/audit.js';
import { createCommandRunner } from '../../server/commands.js';
import { recordingFirewall } from '../helpers/firewall.js';

export const NOBODY = { uid: 65534, gid: 65534 };
export const ctx = { user: 'backup', fingerprint: 'A'.repeat(40), source: '198.51.100.2' };
export const notRoot = process.getuid?.() !== 0 ? 'needs root to run commands as nobody' : false;

export type CommandDecision = Extract<Decision, { kind: 'command' }>;

/** A command decision for `command` (argv split on single spaces), run as nobody. */
export function decision(command: string, over: Partial<CommandDecision> = {}): CommandDecision {
  return {
    kind: 'command',
    address: parseAddress('198.51.100.2'),
    command,
    argv: command.split(' '),
    runAs: 'nobody',
    timeoutSeconds: 10,
    ports: [],
    ...over,
  } as CommandDecision;
}

/** True while the process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z';
  } catch {
    return false;
  }
}

/** Polls `cond` every 50 ms for up to `ms`; its last answer. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

/**
 * Runs `command` through the real command runner as nobody (recording firewall, memory audit)
 * until it is settled, then reads the pid a descendant wrote to `pidFile`.
 */
export async function runAndReadPid(
  command: string,
  timeoutSeconds: number,
  pidFile: string,
): Promise<number> {
  const audit = memoryAudit();
  const r = createCommandRunner({
    audit,
    maxPerUser: 2,
    firewall: recordingFirewall,
    lookup: async () => NOBODY,
  });
  await r.run(decision(command, { timeoutSeconds }), ctx);
  await r.settled();
  assert.equal(audit.lines.at(-1)?.event, 'command');
  const pid = Number(readFileSync(pidFile, 'utf8'));
  assert.ok(pid > 1);
  return pid;
}
