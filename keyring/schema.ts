/**
 * The two keyring files as zod schemas: the server allowlist (`<state-dir>/keyring.json`) and the
 * client keystore (`<home>/keys.json`). Both are validated on every read, field by field, with the
 * same parsers the CLI uses for flags (protocol/address.ts, protocol/access.ts, USERNAME_RE), so
 * a hand-edited value is held to the same rules as one typed on the command line. Objects are
 * strict: a misspelt field (`"enable": false`) is an error, not a silently ignored line. A bad file
 * is reported with the path of the first bad fields and is never rewritten.
 *
 * Armored keys are checked only for their armor header here: parsing 10,000 keys at daemon start
 * would cost seconds, so keys are parsed lazily (allowlist.ts `publicKeyOf`).
 */
import { z } from 'zod';
import { formatPortSpec, parsePortSpec } from '../protocol/access.js';
import { formatCidr, parseCidr } from '../protocol/address.js';
import { commandRegexError } from '../protocol/command.js';
import { FORWARD_MAX_ENTRIES, formatForwardRule, parseForwardRule } from '../protocol/forward.js';
import { ConfigError, isSpaError } from '../protocol/errors.js';
import { FWKNOP_HMAC_KEY_MAX_BYTES, FWKNOP_HMAC_KEY_MIN_BYTES } from '../protocol/fwknop.js';
import { ACCESS_MAX_ENTRIES, TIMEOUT_MAX_SECONDS, USERNAME_RE } from '../protocol/limits.js';

export const FILE_VERSION = 1;
/** Most CIDR blocks one record may list. */
export const SOURCES_MAX = 64;
/** Armored key text bound (a key with many certifications is large, but not this large). */
export const ARMOR_MAX_CHARS = 1_000_000;
export const CMD_TIMEOUT_MAX_SECONDS = 3_600;

export const FINGERPRINT_RE = /^(?:[0-9A-F]{40}|[0-9A-F]{64})$/;

const fingerprint = z
  .string()
  .regex(FINGERPRINT_RE, 'expected an uppercase hex fingerprint (40 or 64 digits, no spaces)');
const username = z
  .string()
  .regex(USERNAME_RE, 'expected a lowercase user name matching [a-z_][a-z0-9_.-]{0,31}');
const isoTime = z.iso.datetime({ offset: true, message: 'expected an ISO 8601 date-time' });

function armored(kind: 'PUBLIC' | 'PRIVATE') {
  const begin = `-----BEGIN PGP ${kind} KEY BLOCK-----`;
  return z
    .string()
    .max(ARMOR_MAX_CHARS, `armored key longer than ${ARMOR_MAX_CHARS} characters`)
    .refine((s) => s.trimStart().startsWith(begin), `expected an armored key starting with ${begin}`);
}

/** Runs a protocol/ parser; its ConfigError message becomes the zod issue. */
function viaParser(check: (s: string) => string | null) {
  return (s: string, ctx: z.RefinementCtx) => {
    try {
      const msg = check(s);
      if (msg) ctx.addIssue({ code: 'custom', message: msg });
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: isSpaError(e) ? e.message : String(e) });
    }
  };
}

const cidrText = z.string().superRefine(
  viaParser((s) => {
    const canon = formatCidr(parseCidr(s, 'source'));
    return canon === s ? null : `not in canonical form: write ${canon}`;
  }),
);

const portText = z.string().superRefine(
  viaParser((s) => {
    const canon = formatPortSpec(parsePortSpec(s, 'port'));
    return canon === s ? null : `not in canonical form: write ${canon}`;
  }),
);

function uniqueStrings(field: string) {
  return (xs: readonly string[], ctx: z.RefinementCtx) => {
    const seen = new Set<string>();
    xs.forEach((x, i) => {
      if (seen.has(x)) ctx.addIssue({ code: 'custom', message: `duplicate ${field} ${x}`, path: [i] });
      seen.add(x);
    });
  };
}

const forwardText = z.string().superRefine(
  viaParser((s) => {
    const canon = formatForwardRule(parseForwardRule(s, 'forward'));
    return canon === s ? null : `not in canonical form: write ${canon}`;
  }),
);

const portList = (min: number) =>
  z
    .array(portText)
    .min(min, `at least ${min} proto/port entry required (e.g. tcp/22)`)
    .max(ACCESS_MAX_ENTRIES, `at most ${ACCESS_MAX_ENTRIES} entries`)
    .superRefine(uniqueStrings('port'));

const seconds = (max: number) =>
  z
    .number()
    .int('expected whole seconds')
    .min(1, 'must be at least 1 second')
    .max(max, `must be at most ${max}`);

/**
 * A command regex is stored as given and matched as `^(?:re)$` by the linear-time engine; the
 * rules (one well-formed expression, what that engine runs) are protocol/command.ts's.
 */
export const commandPolicySchema = z.strictObject({
  regex: z.string().superRefine(viaParser(commandRegexError)),
  // root only when the admin named it explicitly (spa-keys add warns loudly); never a default
  runAs: username,
  timeoutSeconds: seconds(CMD_TIMEOUT_MAX_SECONDS),
  openPorts: z
    .array(portText)
    .max(ACCESS_MAX_ENTRIES, `at most ${ACCESS_MAX_ENTRIES} entries`)
    .superRefine(uniqueStrings('port')),
});

/** fwknop's username rule (protocol/fwknop.ts): printable ASCII, none of "/\\[]:;|=,+*?<>. */
export const FWKNOP_USERNAME_RE = /^[\x20-\x7e]{1,48}$/;
const FWKNOP_USERNAME_FORBIDDEN = /["/\\[\]:;|=,+*?<>]/;

/**
 * Enrolled with --fwknop (SPEC.md §11): this key may also knock with the unmodified fwknop
 * client. Absent means no. The HMAC key is a secret: keyring.json is 0600, and list/show print
 * only whether one is set.
 */
export const fwknopEnrollmentSchema = z.strictObject({
  /** Standard base64 of the raw HMAC key, 16..128 bytes; null: no HMAC. */
  hmacKey: z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'expected standard base64')
    .refine((s) => {
      const n = Buffer.from(s, 'base64').length;
      const ok = n >= FWKNOP_HMAC_KEY_MIN_BYTES && n <= FWKNOP_HMAC_KEY_MAX_BYTES;
      return ok && Buffer.from(s, 'base64').toString('base64') === s;
    }, `expected canonical base64 of ${FWKNOP_HMAC_KEY_MIN_BYTES}..${FWKNOP_HMAC_KEY_MAX_BYTES} bytes`)
    .nullable(),
  /** From fwknop's REQUIRE_USERNAME: the packet's username field must be exactly this. */
  requireUsername: z
    .string()
    .regex(FWKNOP_USERNAME_RE, 'expected 1..48 printable ASCII characters')
    .refine((s) => !FWKNOP_USERNAME_FORBIDDEN.test(s), 'has a character fwknop forbids in usernames')
    .nullable(),
});
export type FwknopEnrollmentRecord = z.infer<typeof fwknopEnrollmentSchema>;

export const keyRecordSchema = z
  .strictObject({
    fingerprint,
    username,
    publicKey: armored('PUBLIC'),
    signingFingerprints: z
      .array(fingerprint)
      .min(1, 'at least the signing key fingerprint is required')
      .superRefine(uniqueStrings('fingerprint')),
    userIds: z.array(z.string().max(4096)),
    algorithm: z.string().min(1).max(64),
    createdAt: isoTime,
    enabled: z.boolean(),
    expiresAt: isoTime.nullable(),
    sources: z.union([
      z.literal('any'),
      z
        .array(cidrText)
        .min(1, "at least one CIDR block, or the string 'any'")
        .max(SOURCES_MAX, `at most ${SOURCES_MAX} CIDR blocks`)
        .superRefine(uniqueStrings('CIDR block')),
    ]),
    openPorts: portList(1),
    requireSourceAddress: z.boolean(),
    defaultTimeout: seconds(TIMEOUT_MAX_SECONDS),
    maxTimeout: seconds(TIMEOUT_MAX_SECONDS),
    command: commandPolicySchema.nullable(),
    fwknop: fwknopEnrollmentSchema.optional(),
    // gateway mode (SPEC.md §9.6, §9.7); absent in files written before it, meaning none/false
    forward: z
      .array(forwardText)
      .min(1, 'leave the field out rather than give an empty list')
      .max(FORWARD_MAX_ENTRIES, `at most ${FORWARD_MAX_ENTRIES} destinations`)
      .superRefine(uniqueStrings('destination'))
      .optional(),
    reply: z.boolean().optional(),
  })
  .superRefine((r, ctx) => {
    if (
      typeof r.defaultTimeout === 'number' &&
      typeof r.maxTimeout === 'number' &&
      r.defaultTimeout > r.maxTimeout
    ) {
      ctx.addIssue({
        code: 'custom',
        message: `defaultTimeout ${r.defaultTimeout} exceeds maxTimeout ${r.maxTimeout}`,
        path: ['defaultTimeout'],
      });
    }
    if (Array.isArray(r.signingFingerprints) && r.signingFingerprints.length > 0) {
      const fprLen = r.fingerprint.length;
      r.signingFingerprints.forEach((f, i) => {
        if (f.length !== fprLen) {
          ctx.addIssue({
            code: 'custom',
            message: 'subkey fingerprint length differs from the primary key',
            path: ['signingFingerprints', i],
          });
        }
      });
    }
  });

export type KeyRecord = z.infer<typeof keyRecordSchema>;
export type CommandPolicy = z.infer<typeof commandPolicySchema>;

export const allowlistFileSchema = z
  .strictObject({
    version: z.literal(FILE_VERSION),
    keys: z.record(z.string(), keyRecordSchema),
  })
  .superRefine((f, ctx) => {
    if (typeof f.keys !== 'object' || f.keys === null) return;
    const signers = new Map<string, string>();
    for (const [k, r] of Object.entries(f.keys)) {
      if (r.fingerprint !== k) {
        ctx.addIssue({
          code: 'custom',
          message: `record filed under ${k} has fingerprint ${r.fingerprint}`,
          path: ['keys', k, 'fingerprint'],
        });
      }
      if (!Array.isArray(r.signingFingerprints)) continue;
      r.signingFingerprints.forEach((s, i) => {
        const other = signers.get(s);
        if (other !== undefined && other !== k) {
          ctx.addIssue({
            code: 'custom',
            message: `signing key ${s} is also listed under ${other}`,
            path: ['keys', k, 'signingFingerprints', i],
          });
        }
        signers.set(s, k);
      });
    }
  });
export type AllowlistFile = z.infer<typeof allowlistFileSchema>;

export const ownKeyRecordSchema = z.strictObject({
  fingerprint,
  username,
  secretKey: armored('PRIVATE'),
  publicKey: armored('PUBLIC'),
  userIds: z.array(z.string().max(4096)),
  createdAt: isoTime,
});
export type OwnKeyRecord = z.infer<typeof ownKeyRecordSchema>;

export const serverKeyRecordSchema = z.strictObject({
  fingerprint,
  name: z.string().min(1).max(128).optional(),
  publicKey: armored('PUBLIC'),
  userIds: z.array(z.string().max(4096)),
  addedAt: isoTime,
});
export type ServerKeyRecord = z.infer<typeof serverKeyRecordSchema>;

function keyedByFingerprint<T extends { fingerprint: string }>(
  recs: Record<string, T>,
  where: string,
  ctx: z.RefinementCtx,
) {
  for (const [k, r] of Object.entries(recs)) {
    if (r.fingerprint !== k) {
      ctx.addIssue({
        code: 'custom',
        message: `record filed under ${k} has fingerprint ${r.fingerprint}`,
        path: [where, k, 'fingerprint'],
      });
    }
  }
}

export const keystoreFileSchema = z
  .strictObject({
    version: z.literal(FILE_VERSION),
    own: z.record(z.string(), ownKeyRecordSchema),
    servers: z.record(z.string(), serverKeyRecordSchema),
  })
  .superRefine((f, ctx) => {
    if (typeof f.own === 'object' && f.own !== null) keyedByFingerprint(f.own, 'own', ctx);
    if (typeof f.servers === 'object' && f.servers !== null) keyedByFingerprint(f.servers, 'servers', ctx);
  });
export type KeystoreFile = z.infer<typeof keystoreFileSchema>;

/** `keys.ABC.openPorts[0]` from a zod path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else {
      const s = String(p);
      out += /^[A-Za-z0-9_]+$/.test(s) ? (out === '' ? s : `.${s}`) : `[${JSON.stringify(s)}]`;
    }
  }
  return out === '' ? '(top level)' : out;
}

/** Validates `data`; throws KEYRING_CORRUPT naming the file and the first bad field paths. */
export function validateFile<T>(schema: z.ZodType<T>, data: unknown, file: string): T {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const issues = r.error.issues;
  const first = issues[0];
  const where = first ? formatPath(first.path) : '(top level)';
  const more =
    issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  const rest = issues
    .slice(1, 4)
    .map((i) => `also ${formatPath(i.path)}: ${i.message}`)
    .join('\n');
  throw new ConfigError('KEYRING_CORRUPT', `${file}: ${where}: ${first?.message ?? 'invalid'}${more}`, {
    field: where,
    hint: `${rest ? `${rest}\n` : ''}the file was left as it is: fix it by hand or restore a backup`,
  });
}
