/**
 * Step 15 of SPEC.md §7, acting on a decision: a firewall grant, or a command run. Shared by the
 * in-process pipeline (pipeline.ts without an `act` dependency) and spad's monitor (monitor.ts),
 * which acts on the verifier's decisions only after verifying them again. With `--cluster` it
 * first claims the knock in the fleet's shared replay record. Writes the `grant`, `grant_failed`
 * and `cluster_open` audit lines; the command runner writes its own.
 */
import { formatAccessList } from '../protocol/access.js';
import { formatAddress } from '../protocol/address.js';
import { type DropCode, isSpaError } from '../protocol/errors.js';
import { formatForwardTarget } from '../protocol/forward.js';
import type { Decision } from '../protocol/policy.js';
import type { Audit } from './audit.js';
import type { ClaimResult } from './cluster/replay.js';
import type { Forwarder } from './firewall/forward.js';
import type { Firewall } from './firewall/types.js';
import type { ReplayEntry, ReplayStore } from './replay.js';

/** Runs the commands users knock for (server/commands.ts); not the firewall's FirewallExec. */
export interface UserCommandRunner {
  /** Runs an authorized command; resolves when it is started (or refused: throws a SpaError). */
  run(
    decision: Extract<Decision, { kind: 'command' }>,
    ctx: { user: string; fingerprint: string; source: string },
  ): Promise<void>;
}

/**
 * The fleet's shared replay record (server/cluster/replay.ts, `spad --cluster`). Claimed here,
 * once a knock is accepted (every step up to the decision passed) and before acting; released
 * if the firewall refuses the grant.
 */
export interface SharedReplayCheck {
  /** What to do when Redis cannot answer in time: refuse the knock, or accept on the local store. */
  readonly fail: 'closed' | 'open';
  claim(key: string, ttlMs: number): Promise<ClaimResult>;
  release(key: string): Promise<unknown>;
}

export interface ActDeps {
  firewall: Firewall;
  audit: Audit;
  commands?: UserCommandRunner | undefined;
  /** Where the knock is recorded as used once it is acted on. */
  replay: Pick<ReplayStore, 'add'>;
  /** With `--cluster`: the shared replay record every gateway of the fleet checks. */
  shared?: SharedReplayCheck | null | undefined;
  /** The clock (ms) for the shared claim's lifetime; default Date.now. */
  now?: () => number;
  /** Gateway mode's forwarding grants; absent: a forwarding decision fails (FW_ERROR). */
  forwarder?: Forwarder | null | undefined;
  /** Ports the input firewall protects: a --nat-local target among them is granted there too. */
  protect?: readonly { proto: string; port: number }[];
}

export interface ActContext {
  /** The datagram's source as the capture saw it. */
  source: string;
  user: string;
  fingerprint: string;
  /** 'fwknop' for a knock from the fwknop client (SPEC.md §11); written on the grant line. */
  kind?: 'fwknop';
  /** process.hrtime.bigint() when the datagram was seen, for the grant line's latency. */
  receivedAt: bigint;
  /** The knock's replay record: added once the firewall took the grant, or before a command starts. */
  used: ReplayEntry;
}

export type ActResult =
  | { ok: true; counter: 'GRANTED' | 'COMMAND' }
  | { ok: false; code: DropCode | 'INTERNAL'; detail?: string; logged: boolean };

/**
 * The shared replay claim for an accepted knock: 'claimed' (this gateway has it), 'local' (no
 * cluster, or Redis unavailable under cluster_fail: open: the local store alone decides), or the
 * refusal: REPLAY when another gateway accepted it first (recorded here too, so its copies stop
 * at step 5), CLUSTER_UNAVAILABLE when Redis did not answer and cluster_fail is closed.
 */
async function claimShared(deps: ActDeps, ctx: ActContext): Promise<'claimed' | 'local' | ActResult> {
  const shared = deps.shared;
  if (!shared) return 'local';
  const now = (deps.now ?? Date.now)();
  const r = await shared.claim(ctx.used.key, ctx.used.expiresAt - now);
  if (r.kind === 'claimed') return 'claimed';
  if (r.kind === 'taken') {
    deps.replay.add(ctx.used);
    return { ok: false, code: 'REPLAY', detail: 'accepted by another gateway of the cluster', logged: false };
  }
  if (shared.fail === 'closed')
    return { ok: false, code: 'CLUSTER_UNAVAILABLE', detail: r.reason, logged: false };
  deps.audit.log('cluster_open', {
    source: ctx.source,
    user: ctx.user,
    fingerprint: ctx.fingerprint,
    detail: `shared replay record unavailable (${r.reason}); accepted on the local store alone (cluster_fail: open)`,
  });
  return 'local';
}

export async function act(deps: ActDeps, decision: Decision, ctx: ActContext): Promise<ActResult> {
  const who = { user: ctx.user, fingerprint: ctx.fingerprint, ...(ctx.kind ? { kind: ctx.kind } : {}) };
  const target = formatAddress(decision.address);
  if (decision.kind === 'command' && !deps.commands) {
    return {
      ok: false,
      code: 'CMD_NOT_ALLOWED',
      detail: 'command execution is not enabled on this server',
      logged: false,
    };
  }
  // SPEC.md §7 step 13 fleet-wide: the atomic claim in Redis, made only now that the knock is
  // accepted, so a copy the policy refused claimed nothing
  const claim = await claimShared(deps, ctx);
  if (claim !== 'claimed' && claim !== 'local') return claim;
  if (decision.kind === 'access') {
    try {
      const fwd = decision.forward;
      const ext = decision.ports[0];
      if (fwd && ext) {
        if (!deps.forwarder) throw new Error('gateway mode is not configured');
        const host = fwd.target.host === 'local' ? 'local' : formatAddress(fwd.target.host);
        // A redirect to a port the input firewall protects must pass that firewall too: grant
        // it there for the same source and time. It goes first; if the forwarder then fails the
        // knock is refused (FW_ERROR, not recorded as used) and that port stays open for the
        // source until the timeout, as a plain grant of it would.
        const local = { proto: ext.proto, port: fwd.target.port };
        if (
          host === 'local' &&
          (deps.protect ?? []).some((p) => p.proto === local.proto && p.port === local.port)
        ) {
          await deps.firewall.grant({
            source: target,
            ports: [local],
            timeoutSeconds: decision.timeoutSeconds,
          });
        }
        await deps.forwarder.grant({
          source: target,
          proto: ext.proto,
          externalPort: ext.port,
          host,
          port: fwd.target.port,
          timeoutSeconds: decision.timeoutSeconds,
        });
      } else {
        await deps.firewall.grant({
          source: target,
          ports: decision.ports,
          timeoutSeconds: decision.timeoutSeconds,
        });
      }
    } catch (err) {
      // the knock may be sent again (see below): give the fleet's claim back too
      if (claim === 'claimed') await deps.shared?.release(ctx.used.key);
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
      ...(decision.forward ? { forward: formatForwardTarget(decision.forward.target) } : {}),
      seconds: decision.timeoutSeconds,
      ms: Number(process.hrtime.bigint() - ctx.receivedAt) / 1e6,
    });
    return { ok: true, counter: 'GRANTED' };
  }
  if (!deps.commands) return { ok: false, code: 'INTERNAL', detail: 'no command runner', logged: false };
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
