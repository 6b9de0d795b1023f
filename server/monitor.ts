/**
 * spad's monitor, the part that runs as root: it owns the firewall, the command runner, the
 * replay store and the audit log, and acts only on decisions it has verified itself.
 *
 * Its vocabulary with the verifier is server/ipc.ts. Per decision it runs, on the signed literal
 * and signature packet the verifier forwards (protocol/envelope.ts readSigned: two plain packets,
 * nothing encrypted or compressed): signer lookup in its own allowlist, signature, enrollment
 * enabled and not expired, payload decode, destination, freshness (verifySigned, the same code
 * the verifier ran; for an fwknop knock verifyFwknopSigned, which re-parses fwknop's plaintext
 * and checks the enrollment allows fwknop knocks), then the replay check (this store is the
 * authority), the policy, with `--cluster` the fleet's shared claim (act.ts), and only then the
 * firewall or the command. A verifier that lies gets a refusal with the step's code
 * and an audit line; a malformed or oversized message gets IPC_INVALID.
 */
import { formatAddress, tryParseAddress } from '../protocol/address.js';
import { type Opened, readSigned, verifySigned } from '../protocol/envelope.js';
import { replayKey } from '../protocol/replay-key.js';
import { type DropCode, isSpaError } from '../protocol/errors.js';
import { verifyFwknopSigned } from '../protocol/fwknop.js';
import { act, type UserCommandRunner, type SharedReplayCheck } from './act.js';
import type { PortSpec } from '../protocol/access.js';
import { decide, type GatewayPolicy } from '../protocol/policy.js';
import type { Reply } from '../protocol/reply.js';
import type { Forwarder } from './firewall/forward.js';
import type { Audit, AuditFields } from './audit.js';
import type { Firewall } from './firewall/types.js';
import { MAX_LINE_BYTES, type MonitorMessage } from './ipc.js';
import {
  ACCEPTED_BATCH,
  AUDIT_LINES_PER_REASON_PER_SECOND,
  MONITOR_PENDING_MAX,
  VERIFIER_AUDIT_PER_SECOND,
} from './limits.js';
import { type CountersMessage, type DecisionMessage, parseVerifierLine } from './ipc-schema.js';
import type { UserDirectory } from './pipeline.js';
import type { ReplayEntry, ReplayStore } from './replay.js';

export interface MonitorDeps extends VerifierPeer {
  serverFingerprint: string;
  users: () => UserDirectory;
  replay: ReplayStore;
  firewall: Firewall;
  audit: Audit;
  commands?: UserCommandRunner | undefined;
  /** With `--cluster`: the fleet's shared replay record, claimed before acting (act.ts). */
  shared?: SharedReplayCheck | null | undefined;
  now: () => number;
  maxSkewSeconds: number;
  /**
   * Sends messages to the verifier, all in one write: the accepted notices, held while more
   * decisions wait (at most ACCEPTED_BATCH) and sent when the last of them is handled.
   */
  notify?: (msgs: MonitorMessage[]) => void;
  /** Gateway mode: the policy half the monitor re-checks forwarding against, and its forwarder. */
  gateway?: GatewayPolicy | null;
  forwarder?: Forwarder | null;
  protect?: readonly PortSpec[];
  /**
   * Signs and sends the reply of SPEC.md §12 to the knock's source address and port. Called only
   * here, only after act() succeeded for a knock that asked for one and was allowed to, once.
   */
  sendReply?: (reply: Reply, to: { address: string; port: number }) => Promise<void>;
}

/** The process a line came from: its ready, fatal and counters messages go to it. */
export interface VerifierPeer {
  onCounters?: (msg: CountersMessage) => void;
  onReady?: () => void;
  onFatal?: (detail: string) => void;
}

export type MonitorOutcome = { ok: true } | { ok: false; code: DropCode | 'INTERNAL' };

export class Monitor {
  /** The monitor's own counters: grants, commands, and its refusals by code. */
  readonly counters = new Map<string, number>();
  private chain: Promise<unknown> = Promise.resolve();
  /** Every decision not yet done (idle()). */
  private readonly running = new Set<Promise<void>>();
  /** Replay key → its grant, while the firewall takes it (decision()). */
  private readonly acting = new Map<string, Promise<void>>();
  private pending = 0;
  private accepted: ReplayEntry[] = [];
  private second = 0;
  private readonly lines = new Map<string, number>();

  constructor(private readonly deps: MonitorDeps) {}

  /** One line from the verifier. Resolves when it has been handled (decisions: acted on or refused). */
  line(text: string, peer: VerifierPeer = this.deps): Promise<MonitorOutcome | null> {
    const parsed = parseVerifierLine(text);
    if (!parsed.ok) return Promise.resolve(this.refuse('IPC_INVALID', parsed.why));
    const msg = parsed.msg;
    switch (msg.t) {
      case 'decision': {
        if (this.pending >= MONITOR_PENDING_MAX) {
          return Promise.resolve(this.refuse('IPC_INVALID', 'too many decisions waiting'));
        }
        this.pending++;
        // the next decision starts when this one gives up its turn (decision()), at the latest
        // when it is done
        let release = (): void => {};
        const turn = new Promise<void>((r) => {
          release = r;
        });
        const p = this.chain
          .then(() => this.decision(msg, release))
          .finally(() => {
            release();
            this.pending--;
            if (this.pending === 0 || this.accepted.length >= ACCEPTED_BATCH) this.sendAccepted();
          });
        this.chain = turn;
        const settled = p.then(
          () => {},
          () => {},
        );
        this.running.add(settled);
        void settled.then(() => this.running.delete(settled));
        return p;
      }
      case 'audit':
        this.verifierAudit(msg.event, msg.fields);
        return Promise.resolve(null);
      case 'counters':
        peer.onCounters?.(msg);
        return Promise.resolve(null);
      case 'ready':
        peer.onReady?.();
        return Promise.resolve(null);
      case 'fatal':
        peer.onFatal?.(msg.detail);
        return Promise.resolve(null);
    }
  }

  /**
   * The verifier's replay fast path learns of accepted knocks in batches: one write (and one
   * wakeup of the verifier) per burst instead of one per knock. Only its shortcut waits: this
   * monitor's store is the authority and has each entry before the grant is logged.
   */
  private sendAccepted(): void {
    if (this.accepted.length === 0) return;
    const msgs = this.accepted.map((entry): MonitorMessage => ({ t: 'accepted', entry }));
    this.accepted = [];
    this.deps.notify?.(msgs);
  }

  /** A line longer than MAX_LINE_BYTES (ipc.ts LineSplitter discarded it). */
  oversize(bytes: number): MonitorOutcome {
    return this.refuse('IPC_INVALID', `line of ${bytes} bytes or more, at most ${MAX_LINE_BYTES}`);
  }

  /** Resolves once every decision received so far has been handled. */
  async idle(): Promise<void> {
    await this.chain;
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  /**
   * Checks one decision again and acts on it. Decisions take turns (line()): each is verified and
   * checked against the replay store in arrival order. A plain access grant then gives up its
   * turn (`release`) while the firewall takes it, so the next decisions are verified meanwhile
   * and their grants join one firewall transaction (nftables.ts); a copy of a knock still being
   * acted on waits for that first (`acting`) and then finds it recorded. Commands and forwarding
   * grants keep their turn until done.
   */
  private async decision(m: DecisionMessage, release: () => void): Promise<MonitorOutcome> {
    const { deps } = this;
    const at = { source: m.source, sport: m.sport };
    const source = tryParseAddress(m.source);
    if (!source || formatAddress(source) !== m.source) {
      return this.refuse('IPC_INVALID', 'source: not a canonical address', at);
    }
    const now = deps.now();
    const users = deps.users();
    let opened: Opened;
    try {
      const signed = await readSigned({
        literal: Buffer.from(m.literal, 'base64'),
        signature: Buffer.from(m.signature, 'base64'),
      });
      const opts = {
        serverFingerprint: deps.serverFingerprint,
        lookupSigner: users.lookupSigner,
        now: new Date(now),
        maxSkewSeconds: deps.maxSkewSeconds,
      };
      // an fwknop knock's literal is fwknop's plaintext: re-parsed here, under this monitor's
      // own enrollments (SPEC.md §11.3); the HMAC itself was checked before decryption
      opened = m.fwknop
        ? await verifyFwknopSigned(signed, {
            ...opts,
            fwknopOf: (f) => users.fwknop?.of(f),
            hmacKeyId: m.fwknop.hmacKeyId,
          })
        : await verifySigned(signed, opts);
    } catch (err) {
      return this.fail(err, at);
    }
    const { payload, signer } = opened;
    const who = {
      user: payload.username,
      fingerprint: signer.fingerprint,
      ...(m.fwknop ? { kind: 'fwknop' as const } : {}),
    };
    const key = replayKey(signer.fingerprint, payload.nonce);
    for (let first = this.acting.get(key); first; first = this.acting.get(key)) await first;
    if (deps.replay.has(key, now)) return this.refuse('REPLAY', undefined, { ...at, ...who });
    if (deps.replay.forgot(payload.timestamp)) {
      return this.refuse('REPLAY', 'signed before what the replay store still remembers', { ...at, ...who });
    }
    const policy = users.policy(signer.fingerprint);
    if (!policy) return this.refuse('SIGNER_UNKNOWN', 'removed during reload', { ...at, ...who });
    let decision: ReturnType<typeof decide>;
    try {
      decision = decide(payload, policy, source, deps.gateway ?? null);
    } catch (err) {
      return this.fail(err, { ...at, ...who });
    }
    // Recorded only once acted on (act.ts: after the firewall took the grant, before a command
    // starts), as the pipeline does; a second copy waits for this one (`acting`, or its turn)
    // and then finds it recorded.
    const used: ReplayEntry = {
      key,
      raw: m.raw,
      timestamp: payload.timestamp,
      expiresAt: (payload.timestamp + 2 * deps.maxSkewSeconds) * 1000,
      source: m.source,
    };
    const replay = {
      add: (entry: ReplayEntry) => {
        deps.replay.add(entry);
        this.accepted.push(entry);
      },
    };
    const acted = act(
      {
        firewall: deps.firewall,
        audit: deps.audit,
        commands: deps.commands,
        replay,
        shared: deps.shared,
        now: deps.now,
        forwarder: deps.forwarder,
        ...(deps.protect ? { protect: deps.protect } : {}),
      },
      decision,
      {
        source: m.source,
        ...who,
        receivedAt: BigInt(m.receivedAt),
        used,
      },
    );
    if (decision.kind === 'access' && !decision.forward) {
      const done = acted.then(
        () => {},
        () => {},
      );
      this.acting.set(key, done);
      void done.then(() => {
        if (this.acting.get(key) === done) this.acting.delete(key);
      });
      release();
    }
    const r = await acted;
    if (r.ok) {
      this.count(r.counter);
      if (decision.kind === 'access' && decision.reply === true && deps.sendReply) {
        const reply: Reply = {
          issued: Math.floor(now / 1000),
          nonce: payload.nonce,
          serverFingerprint: deps.serverFingerprint,
          timeoutSeconds: decision.timeoutSeconds,
          granted: decision.ports,
          forward: decision.forward?.target ?? null,
        };
        try {
          await deps.sendReply(reply, { address: m.source, port: m.sport });
          this.count('REPLIED');
        } catch (err) {
          deps.audit.log('error', { detail: `reply: ${(err as Error).message}`, ...at, ...who });
        }
      }
      return { ok: true };
    }
    if (r.logged) {
      this.count(r.code);
      return { ok: false, code: r.code };
    }
    return this.refuse(r.code, r.detail, { ...at, ...who });
  }

  private count(key: string, n = 1): void {
    this.counters.set(key, (this.counters.get(key) ?? 0) + n);
  }

  /** Bounded audit: at most AUDIT_LINES_PER_REASON_PER_SECOND lines per key per second, the rest summarized. */
  private admit(key: string, limit: number): boolean {
    const second = Math.floor(this.deps.now() / 1000);
    if (second !== this.second) this.flush(second);
    const n = (this.lines.get(key) ?? 0) + 1;
    this.lines.set(key, n);
    return n <= limit;
  }

  /** Writes the summary of suppressed lines; the daemon calls it every second. */
  flush(second = Math.floor(this.deps.now() / 1000)): void {
    if (second === this.second) return;
    for (const [key, n] of this.lines) {
      const limit = key === '\0verifier' ? VERIFIER_AUDIT_PER_SECOND : AUDIT_LINES_PER_REASON_PER_SECOND;
      if (n > limit) {
        this.deps.audit.log('drop_summary', {
          reason: key === '\0verifier' ? 'VERIFIER_AUDIT' : key,
          suppressed: n - limit,
          second: this.second,
          where: 'monitor',
        });
      }
    }
    this.lines.clear();
    this.second = second;
  }

  private verifierAudit(event: 'drop' | 'drop_summary' | 'error', fields: AuditFields): void {
    if (this.admit('\0verifier', VERIFIER_AUDIT_PER_SECOND)) this.deps.audit.log(event, fields);
  }

  private refuse(code: DropCode | 'INTERNAL', detail?: string, extra: AuditFields = {}): MonitorOutcome {
    this.count(code);
    if (this.admit(code, AUDIT_LINES_PER_REASON_PER_SECOND)) {
      this.deps.audit.log('drop', {
        reason: code,
        ...extra,
        ...(detail ? { detail } : {}),
        where: 'monitor',
      });
    }
    return { ok: false, code };
  }

  private fail(err: unknown, extra: AuditFields): MonitorOutcome {
    if (isSpaError(err)) return this.refuse(err.code as DropCode, err.message, extra);
    return this.refuse('INTERNAL', (err as Error)?.message ?? String(err), extra);
  }
}
