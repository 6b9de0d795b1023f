/**
 * The strict schema of every message a verifier may send its monitor (ipc.ts describes the
 * pipe). Loaded by the monitor only.
 */
import { z } from 'zod';
import { MAX_LINE_BYTES, VERIFIER_EVENTS } from './ipc.js';

const b64 = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');
const text = z.string().max(512);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const decisionSchema = z.strictObject({
  t: z.literal('decision'),
  source: z.string().min(2).max(45),
  sport: z.number().int().min(0).max(65535),
  /** SHA-256 (hex) of the encrypted body: the raw-replay key. */
  raw: z.string().regex(/^[0-9a-f]{64}$/),
  literal: b64(4096),
  signature: b64(4096),
  /** process.hrtime.bigint() of the capture, decimal (for the grant line's latency). */
  receivedAt: z.string().regex(/^[0-9]{1,20}$/),
  /**
   * Present for an fwknop knock (SPEC.md §11): the literal is fwknop's plaintext, and the
   * enrollment whose HMAC key matched the datagram's tag (null: no tag), as the verifier found.
   */
  fwknop: z
    .strictObject({
      hmacKeyId: z
        .string()
        .regex(/^(?:[0-9A-F]{40}|[0-9A-F]{64})$/)
        .nullable(),
    })
    .optional(),
});
export type DecisionMessage = z.infer<typeof decisionSchema>;

/** Keys of an audit line that the log writes itself, or that only the monitor may set. */
const RESERVED_FIELDS = ['event', 'svc', 'level', 'time', 'where'];

const auditSchema = z.strictObject({
  t: z.literal('audit'),
  event: z.enum(VERIFIER_EVENTS),
  fields: z
    .record(z.string().regex(/^[a-zA-Z]{1,16}$/), z.union([text, z.number(), z.boolean()]))
    .refine((r) => Object.keys(r).length <= 12, 'at most 12 fields')
    .refine((r) => !RESERVED_FIELDS.some((k) => k in r), 'a field the audit log itself writes'),
});

const countersSchema = z.strictObject({
  t: z.literal('counters'),
  counters: z
    .record(z.string().regex(/^[A-Za-z_-]{1,32}$/), count)
    .refine((r) => Object.keys(r).length <= 96, 'at most 96 counters'),
  capture: z
    .strictObject({
      received: count,
      oversize: count,
      decodeErrors: count,
      dropped: count.optional(),
      restarts: count.optional(),
      linkType: count.optional(),
      prefiltered: z
        .record(z.string().regex(/^[A-Za-z_-]{1,32}$/), count)
        .refine((r) => Object.keys(r).length <= 32)
        .optional(),
      rejected: z
        .record(z.string().regex(/^[A-Za-z_-]{1,32}$/), count)
        .refine((r) => Object.keys(r).length <= 32)
        .optional(),
    })
    .nullable(),
});

const readySchema = z.strictObject({ t: z.literal('ready') });
const fatalSchema = z.strictObject({ t: z.literal('fatal'), detail: text });

export const verifierMessageSchema = z.discriminatedUnion('t', [
  decisionSchema,
  auditSchema,
  countersSchema,
  readySchema,
  fatalSchema,
]);
export type VerifierMessage = z.infer<typeof verifierMessageSchema>;
export type CountersMessage = z.infer<typeof countersSchema>;

/** Parses one line from the verifier: the message, or why it is refused (a field path, never the bytes). */
export function parseVerifierLine(
  line: string,
): { ok: true; msg: VerifierMessage } | { ok: false; why: string } {
  if (Buffer.byteLength(line, 'utf8') > MAX_LINE_BYTES) return { ok: false, why: 'line too long' };
  let data: unknown;
  try {
    data = JSON.parse(line);
  } catch {
    return { ok: false, why: `not JSON (${line.length} chars)` };
  }
  const r = verifierMessageSchema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0];
    return { ok: false, why: `${issue?.path.join('.') || '(top)'}: ${issue?.message ?? 'invalid'}` };
  }
  return { ok: true, msg: r.data };
}
