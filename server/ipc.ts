/**
 * The pipe between spad's monitor (root) and its verifier (unprivileged): newline-delimited JSON,
 * one message a line, a fixed schema each way (SECURITY.md "Privilege separation").
 *
 * Verifier → monitor (fd 1 of the verifier): the monitor trusts none of it. Every line is bounded
 * (MAX_LINE_BYTES; a longer one is discarded as it arrives, never buffered) and parsed against a
 * strict schema; anything else is refused as IPC_INVALID. A decision carries only what the monitor
 * needs to verify it again: the source, the raw digest, and the signed literal and signature
 * packet bodies (base64). Audit lines carry a fixed set of events and bounded fields.
 *
 * Monitor → verifier (fd 3 of the verifier): the server key, the allowlist and settings at
 * start (init) and on every reload, and notices of accepted knocks (for the verifier's replay
 * fast path). The verifier trusts its monitor.
 */
import { z } from 'zod';
import type { KeyRecord } from '../keyring/index.js';
import type { ReplayEntry } from './replay.js';

/** A decision line is ~3 kB with RSA-4096 keys; nothing the verifier says legitimately needs more. */
export const MAX_LINE_BYTES = 16 * 1024;

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
});
export type DecisionMessage = z.infer<typeof decisionSchema>;

/** Audit events a verifier may ask the monitor to write: drops and its own errors. */
export const VERIFIER_EVENTS = ['drop', 'drop_summary', 'error'] as const;

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

/** What the verifier needs to run the pipeline up to the decision. */
export interface VerifierSettings {
  capture: { mode: 'pcap'; device: string } | { mode: 'udp'; host: string };
  port: number;
  maxSkewSeconds: number;
  rateBurst: number;
  ratePerSecond: number;
  verbose: boolean;
}

export type MonitorMessage =
  | {
      t: 'init';
      /** Armored server secret key (decrypted: the verifier holds no passphrase). */
      serverKey: string;
      records: KeyRecord[];
      settings: VerifierSettings;
      replay: ReplayEntry[];
    }
  | { t: 'reload'; records: KeyRecord[] }
  | { t: 'accepted'; entry: ReplayEntry }
  /** Stop capturing, finish the queue, exit. */
  | { t: 'stop' };

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

/**
 * Splits a byte stream into lines of at most `max` bytes. A longer line is reported once
 * (onOversize) and its bytes are skipped up to the next newline, so memory stays bounded
 * whatever the other side writes.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private skipping = false;

  constructor(
    private readonly max: number,
    private readonly onLine: (line: string) => void,
    private readonly onOversize: (bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); ; nl = chunk.indexOf(10, start)) {
      const end = nl === -1 ? chunk.length : nl;
      const piece = chunk.subarray(start, end);
      if (!this.skipping) {
        if (this.size + piece.length > this.max) {
          this.skipping = true;
          this.onOversize(this.size + piece.length);
          this.parts = [];
          this.size = 0;
        } else if (piece.length > 0) {
          this.parts.push(piece);
          this.size += piece.length;
        }
      }
      if (nl === -1) return;
      if (!this.skipping) {
        const line = Buffer.concat(this.parts, this.size).toString('utf8');
        this.parts = [];
        this.size = 0;
        if (line.length > 0) this.onLine(line);
      }
      this.skipping = false;
      start = nl + 1;
    }
  }
}

export function encodeLine(msg: unknown): string {
  return `${JSON.stringify(msg)}\n`;
}
