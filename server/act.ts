/**
 * Step 15 of SPEC.md §7, acting on a decision: a firewall grant, or a command run. Shared by the
 * in-process pipeline (pipeline.ts without an `act` dependency) and spad's monitor (monitor.ts),
 * which acts on the verifier's decisions only after verifying them again. Writes the `grant`
 * and `grant_failed` audit lines; the command runner writes its own.
 */
import { formatAccessList } from '../protocol/access.js';
import { formatAddress } from '../protocol/address.js';
import { type DropCode, isSpaError } from '../protocol/errors.js';
import type { Decision } from '../protocol/policy.js';
import type { Audit } from './audit.js';
import type { Firewall } from './firewall/types.js';
import type { ReplayEntry, ReplayStore } from './replay.js';

export interface CommandRunner {
  /** Runs an authorized command; resolves when it is started (or refused: throws a SpaError). */
  run(
    decision: Extract<Decision, { kind: 'command' }>,
    ctx: { user: string; fingerprint: string; source: string },
  ): Promise<void>;
}

export interface ActDeps {
  firewall: Firewall;
  audit: Audit;
  commands?: CommandRunner | undefined;
  /** Where the knock is recorded as used once it is acted on. */
  replay: Pick<ReplayStore, 'add'>;
}

export interface ActContext {
  /** The datagram's source as the capture saw it. */
  source: string;
  user: string;
  fingerprint: string;
  /** process.hrtime.bigint() when the datagram was seen, for the grant line's latency. */
  receivedAt: bigint;
  /** The knock's replay record: added once the firewall took the grant, or before a command starts. */
  used: ReplayEntry;
}

export type ActResult =
  | { ok: true; counter: 'GRANTED' | 'COMMAND' }
  | { ok: false; code: DropCode | 'INTERNAL'; detail?: string; logged: boolean };

export async function act(deps: ActDeps, decision: Decision, ctx: ActContext): Promise<ActResult> {
  const who = { user: ctx.user, fingerprint: ctx.fingerprint };
  const target = formatAddress(decision.address);
  if (decision.kind === 'access') {
    try {
      await deps.firewall.grant({
        source: target,
        ports: decision.ports,
        timeoutSeconds: decision.timeoutSeconds,
      });
    } catch (err) {
      deps.audit.log('grant_failed', {
        reason: 'FW_ERROR',
        source: ctx.source,
        ...who,
        detail: (err as Error).message,
      });
      return { ok: false, code: 'FW_ERROR', logged: true };
    }
    // used once the firewall took it: after FW_ERROR the same datagram may be sent again
    deps.replay.add(ctx.used);
    deps.audit.log('grant', {
      source: ctx.source,
      address: target,
      ...who,
      ports: formatAccessList(decision.ports),
      seconds: decision.timeoutSeconds,
      ms: Number(process.hrtime.bigint() - ctx.receivedAt) / 1e6,
    });
    return { ok: true, counter: 'GRANTED' };
  }
  if (!deps.commands) {
    return {
      ok: false,
      code: 'CMD_NOT_ALLOWED',
      detail: 'command execution is not enabled on this server',
      logged: false,
    };
  }
  // used before the command starts: running it twice is not harmless, whatever run() reports
  deps.replay.add(ctx.used);
  try {
    await deps.commands.run(decision, { ...who, source: ctx.source });
  } catch (err) {
    if (isSpaError(err)) return { ok: false, code: err.code as DropCode, detail: err.message, logged: false };
    return { ok: false, code: 'INTERNAL', detail: (err as Error)?.message ?? String(err), logged: false };
  }
  return { ok: true, counter: 'COMMAND' };
}
