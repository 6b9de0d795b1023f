/**
 * One cleanup path for a normal exit and for SIGINT, SIGTERM and SIGHUP, for the demo, the
 * benchmarks and the e2e harnesses.
 *
 * `onInterrupt(fn)` registers a cleanup step and returns `release`: calling `release()` runs the
 * step now, once, and unregisters it, so a `finally` block calls `release()` and a signal runs the
 * same step. While at least one step is registered, the process handles those three signals: it
 * runs every pending step, newest first (so a daemon is stopped before the namespace it lives in
 * is deleted), then dies of the same signal (a shell sees status 128 + n). Further signals during
 * the cleanup are ignored, and errors thrown by code the teardown cut short are noted, not fatal:
 * a second Ctrl-C, or a pending `await` that fails because its process was just killed, must not
 * cut the cleanup short. The cleanup is bounded (`CLEANUP_LIMIT_MS`); past it the process dies
 * anyway and says so. With no step registered the default signal behaviour is back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type Handled = (typeof SIGNALS)[number];
/** Longest the signal cleanup may take before the process dies anyway. */
export const CLEANUP_LIMIT_MS = 20_000;

interface Step {
  readonly fn: () => unknown;
  done: Promise<void> | null;
}

const pending: Step[] = [];
let caught: Handled | null = null;

function runStep(step: Step): Promise<void> {
  if (!step.done) {
    const i = pending.indexOf(step);
    if (i !== -1) pending.splice(i, 1);
    step.done = (async () => {
      await step.fn();
    })();
    if (pending.length === 0 && caught === null) listen(false);
  }
  return step.done;
}

function note(err: unknown): void {
  process.stderr.write(`cleanup: after ${caught ?? 'a signal'}: ${(err as Error)?.message ?? String(err)}\n`);
}

async function onSignal(sig: Handled): Promise<void> {
  if (caught !== null) return; // already cleaning up: one cleanup, then one exit
  caught = sig;
  process.stderr.write(`${basename(process.argv[1] ?? 'node')}: ${sig}: cleaning up\n`);
  process.on('uncaughtException', note);
  process.on('unhandledRejection', note);
  process.stdout.on('error', () => {}); // a reader killed by the same Ctrl-C
  const limit = setTimeout(() => {
    process.stderr.write(`cleanup: not finished after ${CLEANUP_LIMIT_MS} ms; exiting anyway\n`);
    die(sig);
  }, CLEANUP_LIMIT_MS);
  while (pending.length > 0) {
    const step = pending[pending.length - 1] as Step;
    try {
      await runStep(step);
    } catch (err) {
      note(err);
    }
  }
  clearTimeout(limit);
  die(sig);
}

function die(sig: Handled): void {
  listen(false);
  process.kill(process.pid, sig);
  // the default action of these signals ends the process; in case it was ignored by our parent:
  setTimeout(() => process.exit(128 + signalNumber(sig)), 1000);
}

function signalNumber(sig: Handled): number {
  return { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }[sig];
}

const handlers = new Map<Handled, () => void>(SIGNALS.map((s) => [s, () => void onSignal(s)]));
let listening = false;

function listen(on: boolean): void {
  if (on === listening) return;
  listening = on;
  for (const [sig, h] of handlers) {
    if (on) process.on(sig, h);
    else process.off(sig, h);
  }
}

/**
 * Registers a cleanup step that a signal runs too; returns `release`, which runs it now (once:
 * later calls, and a concurrent signal, share the same run) and unregisters it.
 */
export function onInterrupt(fn: () => unknown): () => Promise<void> {
  const step: Step = { fn, done: null };
  pending.push(step);
  listen(true);
  return () => runStep(step);
}

/** The signal being handled, or null: lets a script say "interrupted" instead of "failed". */
export function interruptedBy(): Handled | null {
  return caught;
}

/** A fresh private directory (mode 0700, from mkdtemp) removed by `remove()` or on a signal. */
export function tempDir(prefix: string): { path: string; remove(): Promise<void> } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: onInterrupt(() => rmSync(path, { recursive: true, force: true })) };
}
