/**
 * Knock, then wait for the server's signed reply (SPEC.md §12); without one, knock again with a
 * fresh packet (new nonce and timestamp), up to `retries` more times. A datagram that does not
 * verify (forged, garbage, a replay of an earlier run's reply) is ignored and the wait goes on,
 * so an attacker cannot cut it short. Bounded: (retries + 1) knocks, each waiting `waitMs`.
 */
import { formatPortSpec } from '../protocol/access.js';
import { ConfigError, isSpaError } from '../protocol/errors.js';
import { formatForwardTarget } from '../protocol/forward.js';
import { DEFAULT_MAX_SKEW_SECONDS } from '../protocol/limits.js';
import type { Reply } from '../protocol/reply.js';
import type { PreparedKnock, SealedKnock } from './knock.js';

export interface AwaitReplyOptions {
  readonly retries: number;
  readonly waitMs: number;
  readonly log?: (line: string) => void;
  /** The first knock, already sealed (and saved by the caller). */
  readonly first?: SealedKnock;
  /** Called with each knock this seals (the retries) before it is sent: --save-packet. */
  readonly beforeSend?: (packet: Uint8Array) => Promise<void>;
}

export interface Granted {
  readonly reply: Reply;
  /** Knocks sent, 1 = the first one was answered. */
  readonly knocks: number;
  /** From sending the answered knock to its verified reply. */
  readonly latencyMs: number;
}

/** The one line `spa` prints: `access granted: tcp/22 for 30 s` (or the forwarded port). */
export function grantedLine(r: Reply): string {
  const ports = r.granted.map(formatPortSpec).join(',');
  const fwd = r.forward ? ` -> ${formatForwardTarget(r.forward)}` : '';
  return `access granted: ${ports}${fwd} for ${r.timeoutSeconds} s`;
}

export async function knockUntilReply(p: PreparedKnock, o: AwaitReplyOptions): Promise<Granted> {
  const serverKey = await p.serverKey();
  if (!serverKey) throw new ConfigError('USAGE', '--retries: no server key to verify the reply with');
  const { verifyReply } = await import('../protocol/reply.js');
  const nonces: Uint8Array[] = [];
  const total = o.retries + 1;
  for (let attempt = 1; attempt <= total; attempt++) {
    const given = attempt === 1 ? o.first : undefined;
    const { payload, packet } = given ?? (await p.seal());
    if (!given) await o.beforeSend?.(packet);
    nonces.push(payload.nonce);
    await p.send(packet);
    const sentAt = performance.now();
    const deadline = sentAt + o.waitMs;
    o.log?.(
      `knock ${attempt}/${total}: sent ${packet.length} bytes, waiting ${o.waitMs} ms for the signed reply`,
    );
    // at most a few dozen datagrams per wait: the socket's inbox is bounded and so is this loop
    for (let seen = 0; seen < 64; seen++) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const msg = await p.receive(left);
      if (!msg) break;
      try {
        const reply = await verifyReply(msg, {
          serverKey,
          nonces,
          now: new Date(),
          maxSkewSeconds: DEFAULT_MAX_SKEW_SECONDS,
        });
        return { reply, knocks: attempt, latencyMs: performance.now() - sentAt };
      } catch (e) {
        o.log?.(`ignored a ${msg.length}-byte datagram: ${isSpaError(e) ? e.message : String(e)}`);
      }
    }
  }
  throw new ConfigError(
    'REPLY_TIMEOUT',
    `no verified reply from ${p.destination.host} after ${total} knock${total === 1 ? '' : 's'}`,
    {
      hint:
        'the knock may be lost or refused (the server logs why), or your key is not enrolled with --reply;\n' +
        'spad never answers a refused knock',
    },
  );
}
