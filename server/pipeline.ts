/**
 * The verification pipeline of SPEC.md §7, in order, cheapest first. Steps 1-3 run as a datagram
 * arrives; what may be a knock then waits in a bounded fair queue (server/fairqueue.ts, step 4)
 * and is handled one at a time: replay checks and firewall changes never race, and a flood can
 * only take its fair share of the work, never a gate a valid knock must pass. Nothing is ever
 * sent back.
 */
import { createHash } from 'node:crypto';
import { tryParseAddress } from '../protocol/address.js';
import { type Opened, open, type ServerIdentity } from '../protocol/envelope.js';
import { precheck } from '../protocol/precheck.js';
import { replayKey } from '../protocol/replay-key.js';
import { type DropCode, isSpaError } from '../protocol/errors.js';
import type { Framing } from '../protocol/framing.js';
import {
  type FwknopEnrollment,
  type FwknopHmacKey,
  looksLikeFwknop,
  openFwknop,
  type Unwrapped,
  unwrapFwknop,
} from '../protocol/fwknop.js';
import { act, type UserCommandRunner, type SharedReplayCheck } from './act.js';
import type { PortSpec } from '../protocol/access.js';
import { type Decision, decide, type GatewayPolicy, type UserPolicy } from '../protocol/policy.js';
import type { Forwarder } from './firewall/forward.js';
import type { Audit } from './audit.js';
import type { Datagram } from './capture/types.js';
import { FairQueue, type FairQueueOptions } from './fairqueue.js';
import type { Firewall } from './firewall/types.js';
import { AUDIT_LINES_PER_REASON_PER_SECOND, BACKLOG_HIGH, BACKLOG_LOW, QUEUE_CAPACITY } from './limits.js';
import type { ReplayEntry, ReplayStore } from './replay.js';

/** The users enrolled with --fwknop (SPEC.md §11), compiled once per load. */
export interface FwknopDirectory {
  readonly hmacKeys: readonly FwknopHmacKey[];
  /** Some fwknop user has no HMAC key: a knock without a tag may be theirs. */
  readonly acceptWithoutHmac: boolean;
  of(fingerprint: string): FwknopEnrollment | undefined;
}

/** The enrolled users as the pipeline sees them; replaced as a whole on reload. */
export interface UserDirectory {
  lookupSigner: import('../protocol/envelope.js').LookupSigner;
  /** Policy by primary fingerprint. */
  policy(fingerprint: string): UserPolicy | undefined;
  /** Absent: nobody may knock with the fwknop client. */
  fwknop?: FwknopDirectory;
}

export type { UserCommandRunner, SharedReplayCheck } from './act.js';

/** What the pipeline hands over at step 15 when acting is someone else's (spad's monitor). */
export interface ActRequest {
  datagram: Datagram;
  decision: Decision;
  opened: Opened;
  /** SHA-256 (hex) of the encrypted body: the raw-replay fast path's key. */
  raw: string;
  /** An fwknop knock (SPEC.md §11): whose HMAC key matched its tag, or null for no tag. */
  fwknop?: { hmacKeyId: string | null };
}
export type ActHandler = (
  req: ActRequest,
) => Promise<{ ok: true } | { ok: false; code: DropCode | 'INTERNAL' }>;

export interface PipelineDeps {
  identity: ServerIdentity;
  users: () => UserDirectory;
  replay: ReplayStore;
  /** Acts directly (step 15) when `act` is not given. */
  firewall?: Firewall;
  /** Replaces the direct firewall/command step: spad's verifier sends the decision to its monitor. */
  act?: ActHandler;
  audit: Audit;
  now: () => number;
  maxSkewSeconds: number;
  commands?: UserCommandRunner;
  /** With `--cluster` and no `act`: the fleet's shared replay record (act.ts). */
  shared?: SharedReplayCheck | null;
  /** Gateway mode (SPEC.md §9.6): forwarding is refused without it. */
  gateway?: GatewayPolicy | null;
  /** The in-process act step's forwarder and protected ports (act.ts). */
  forwarder?: Forwarder | null;
  protect?: readonly PortSpec[];
  /**
   * Datagrams that may wait; beyond this the busiest flow (source and port) sheds one (RATE_LIMITED,
   * detail queue_full). Default QUEUE_CAPACITY (limits.ts).
   */
  maxQueue?: number;
  /** The fair queue's other settings (returning-source lane). */
  queue?: Omit<Partial<FairQueueOptions>, 'capacity'>;
  /**
   * Told `true` when the queue holds BACKLOG_HIGH or more datagrams and `false` once it is back
   * under BACKLOG_LOW: the capture may then stop reading, so that a flood is shed (fairly) before
   * it costs this process anything (pcap-child.ts).
   */
  onBacklog?: (busy: boolean) => void;
}

interface Pending {
  d: Datagram;
  framing: Framing;
  /** An fwknop knock (SPEC.md §11) that passed its pre-decryption checks. */
  fwknop?: Unwrapped;
}

export type Outcome = { ok: true; decision: Decision } | { ok: false; code: DropCode | 'INTERNAL' };

export class Pipeline {
  readonly counters = new Map<string, number>();
  private readonly queue: FairQueue<Pending>;
  private backlogged = false;
  private running = false;
  private idleWaiters: Array<() => void> = [];
  private logSecond = 0;
  private readonly linesThisSecond = new Map<string, number>();

  constructor(private readonly deps: PipelineDeps) {
    this.queue = new FairQueue({ ...deps.queue, capacity: deps.maxQueue ?? QUEUE_CAPACITY });
  }

  /**
   * Steps 1-3, then queues the datagram fairly (step 4). Called from the capture callback; never
   * throws. A full queue sheds from its busiest flow (source and port): never a new source's first.
   */
  submit(d: Datagram): void {
    try {
      const s = this.screen(d);
      if (!('framing' in s)) return;
      const shed = this.queue.push({ d, ...s }, d.source, this.deps.now(), d.sourcePort);
      if (shed) this.drop(shed.d, 'RATE_LIMITED', 'queue_full: shed from the busiest flow');
      if (!this.backlogged && this.queue.size >= BACKLOG_HIGH) {
        this.backlogged = true;
        this.deps.onBacklog?.(true);
      }
    } catch (err) {
      this.deps.audit.log('error', { detail: `pipeline: ${(err as Error).message}` });
    }
    if (!this.running) void this.drain();
  }

  /**
   * Puts the addresses of knocks accepted before a restart (replay entries that name one) back
   * in the returning-source lane, each until its knock's time + the lane's memory, as if this
   * process had been running all along. Only the queue's order changes: nothing is accepted.
   */
  restoreReturning(entries: readonly ReplayEntry[]): void {
    // oldest first: the lane forgets the least recently trusted when full
    for (const e of [...entries].sort((a, b) => a.timestamp - b.timestamp)) {
      if (e.source !== undefined && tryParseAddress(e.source)) this.queue.trust(e.source, e.timestamp * 1000);
    }
  }

  /** Whether `source` knocked validly lately (the fair queue's returning lane). */
  isReturning(source: string): boolean {
    return this.queue.isTrusted(source, this.deps.now());
  }

  /** Datagrams waiting in the fair queue. */
  get queued(): number {
    return this.queue.size;
  }

  /** Resolves when the queue is empty and nothing is being handled. */
  idle(): Promise<void> {
    if (!this.running && this.queue.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private async drain(): Promise<void> {
    this.running = true;
    for (let p = this.queue.shift(); p; p = this.queue.shift()) {
      if (this.backlogged && this.queue.size < BACKLOG_LOW) {
        this.backlogged = false;
        this.deps.onBacklog?.(false);
      }
      try {
        await this.verify(p.d, p.framing, p.fwknop);
      } catch (err) {
        this.deps.audit.log('error', { detail: `pipeline: ${(err as Error).message}` });
      }
    }
    if (this.backlogged) {
      this.backlogged = false;
      this.deps.onBacklog?.(false);
    }
    this.running = false;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  private count(key: string): void {
    this.counters.set(key, (this.counters.get(key) ?? 0) + 1);
  }

  private drop(
    d: Datagram,
    code: DropCode | 'INTERNAL',
    detail?: string,
    extra: Record<string, unknown> = {},
  ): Outcome {
    this.count(code);
    // Every drop is counted; under a flood its audit lines are bounded: the first
    // AUDIT_LINES_PER_REASON_PER_SECOND of each reason in a second are written, the rest summarized.
    const second = Math.floor(this.deps.now() / 1000);
    if (second !== this.logSecond) this.flushDropSummary(second);
    const n = (this.linesThisSecond.get(code) ?? 0) + 1;
    this.linesThisSecond.set(code, n);
    if (n <= AUDIT_LINES_PER_REASON_PER_SECOND) {
      this.deps.audit.log('drop', {
        reason: code,
        source: d.source,
        sport: d.sourcePort,
        ...(detail ? { detail } : {}),
        ...extra,
      });
    }
    return { ok: false, code };
  }

  /** Counts drops made before the pipeline (the capture process shedding a flood) and logs their summary. */
  countShed(reason: string, n: number): void {
    this.counters.set(reason, (this.counters.get(reason) ?? 0) + n);
    this.deps.audit.log('drop_summary', { reason, suppressed: n, where: 'capture' });
  }

  /** Writes one `drop_summary` line per reason whose lines were suppressed; the daemon calls it every second. */
  flushDropSummary(second = Math.floor(this.deps.now() / 1000)): void {
    if (second === this.logSecond) return;
    for (const [reason, n] of this.linesThisSecond) {
      if (n > AUDIT_LINES_PER_REASON_PER_SECOND) {
        this.deps.audit.log('drop_summary', {
          reason,
          suppressed: n - AUDIT_LINES_PER_REASON_PER_SECOND,
          second: this.logSecond,
        });
      }
    }
    this.linesThisSecond.clear();
    this.logSecond = second;
  }

  /** One datagram through every step, without queueing. Exposed for tests. */
  async handle(d: Datagram): Promise<Outcome> {
    const s = this.screen(d);
    return 'framing' in s ? this.verify(d, s.framing, s.fwknop) : s;
  }

  /**
   * Steps 1-3: size, framing, recipient; for an fwknop knock also its HMAC (SPEC.md §11.2), so
   * that nothing unauthenticated by it is queued. The framing when the datagram may be a knock;
   * else its drop.
   */
  private screen(d: Datagram): Omit<Pending, 'd'> | Outcome {
    if (d.oversize) return this.drop(d, 'PKT_TOO_LONG', `${d.length} bytes`);
    try {
      // read as fwknop only while someone may knock that way (SPEC.md §11.1)
      const dir = this.deps.users().fwknop;
      if (dir && looksLikeFwknop(d.payload)) {
        const u = unwrapFwknop(d.payload.toString('latin1'), {
          hmacKeys: dir.hmacKeys,
          acceptWithoutHmac: dir.acceptWithoutHmac,
          recipientKeyIds: this.deps.identity.recipientKeyIds,
        });
        return { framing: u.framing, fwknop: u };
      }
      return { framing: precheck(d.payload, this.deps.identity) };
    } catch (err) {
      return this.fail(
        d,
        err,
        this.deps.users().fwknop && looksLikeFwknop(d.payload) ? { kind: 'fwknop' } : {},
      );
    }
  }

  /** Steps 5-15, for a datagram that passed steps 1-3 and its turn in the queue (step 4). */
  private async verify(d: Datagram, framing: Framing, fwknop?: Unwrapped): Promise<Outcome> {
    const { deps } = this;
    const bytes = d.payload;
    const now = deps.now();
    const kind = fwknop ? { kind: 'fwknop' } : {};
    // 5: a duplicate of an accepted knock's ciphertext (headers may be re-framed, this cannot)
    const raw = createHash('sha256').update(framing.encryptedBody).digest('hex');
    if (deps.replay.hasRaw(raw, now)) return this.drop(d, 'REPLAY_RAW', undefined, kind);
    // 6-12: decrypt, structure, signer, signature, decode, destination, freshness
    const users = deps.users();
    let opened: Opened;
    try {
      const opts = {
        server: deps.identity,
        lookupSigner: users.lookupSigner,
        now: new Date(now),
        maxSkewSeconds: deps.maxSkewSeconds,
      };
      opened = fwknop
        ? await openFwknop(fwknop, { ...opts, fwknopOf: (f) => users.fwknop?.of(f) })
        : await open(bytes, opts);
    } catch (err) {
      return this.fail(d, err, kind);
    }
    const { payload, signer } = opened;
    const who = {
      user: payload.username,
      fingerprint: signer.fingerprint,
      ...(fwknop ? { kind: 'fwknop' as const } : {}),
    };
    // 13: replay of the signed nonce. Checked here, recorded only once the knock is accepted
    // (below), so a refused copy (say from an on-path attacker's own address) burns nothing.
    const key = replayKey(signer.fingerprint, payload.nonce);
    if (deps.replay.has(key, now)) return this.drop(d, 'REPLAY', undefined, who);
    if (deps.replay.forgot(payload.timestamp))
      return this.drop(d, 'REPLAY', 'signed before what the replay store still remembers', who);
    const used: ReplayEntry = {
      key,
      raw,
      timestamp: payload.timestamp,
      expiresAt: (payload.timestamp + 2 * deps.maxSkewSeconds) * 1000,
      source: d.source,
    };
    // 14: policy
    const policy = users.policy(signer.fingerprint);
    if (!policy) return this.drop(d, 'SIGNER_UNKNOWN', 'removed during reload', who);
    const source = tryParseAddress(d.source);
    if (!source) return this.drop(d, 'INTERNAL', 'capture gave an unparseable source');
    let decision: Decision;
    try {
      decision = decide(payload, policy, source, deps.gateway ?? null);
    } catch (err) {
      return this.fail(d, err, who);
    }
    // 15: act (spad's verifier hands the decision to its monitor instead: deps.act, which
    // verifies it again, records it in the authoritative replay store and logs the outcome)
    if (deps.act) {
      const r = await deps.act({
        datagram: d,
        decision,
        opened,
        raw,
        ...(fwknop ? { fwknop: { hmacKeyId: fwknop.hmacKeyId } } : {}),
      });
      if (!r.ok) return { ok: false, code: r.code };
      // the local replay fast path learns of it when the monitor says it was accepted
      this.queue.trust(d.source, now);
      return { ok: true, decision };
    }
    if (!deps.firewall) return this.drop(d, 'INTERNAL', 'no firewall and no act', who);
    const r = await act(
      {
        firewall: deps.firewall,
        audit: deps.audit,
        commands: deps.commands,
        replay: deps.replay,
        shared: deps.shared,
        now: deps.now,
        forwarder: deps.forwarder,
        ...(deps.protect ? { protect: deps.protect } : {}),
      },
      decision,
      { source: d.source, ...who, receivedAt: d.receivedAt, used },
    );
    if (r.ok) {
      this.queue.trust(d.source, now);
      this.count(r.counter);
      return { ok: true, decision };
    }
    if (r.logged) {
      this.count(r.code);
      return { ok: false, code: r.code };
    }
    return this.drop(d, r.code, r.detail, who);
  }

  private fail(d: Datagram, err: unknown, extra: Record<string, unknown> = {}): Outcome {
    if (isSpaError(err)) return this.drop(d, err.code as DropCode, err.message, extra);
    return this.drop(d, 'INTERNAL', (err as Error)?.message ?? String(err), extra);
  }
}
