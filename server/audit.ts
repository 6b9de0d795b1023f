/**
 * Audit log: one JSON line per event (pino), to stdout or a file. Every drop has its stable
 * reason code; grants and commands say who, from where, what and for how long. Never key
 * material, packet bodies or command output beyond the capture limit.
 *
 * Strings in a line may come from a packet or a key (usernames, commands, command output, user
 * ids, error details). JSON escapes C0 controls but not DEL, C1 or bidi controls, which a log
 * viewer renders: every string field is passed through `displaySafe` (protocol/display.ts)
 * first, newlines and tabs excepted (JSON escapes those). The file is created 0600 (it names
 * users and their addresses) and reopened on `reopen()`, which spad calls on SIGUSR1 so
 * logrotate can move it away (README "Audit log").
 */
import { pino } from 'pino';
import { displaySafe } from '../protocol/display.js';

export type AuditEvent =
  | 'start'
  | 'stop'
  | 'reload'
  | 'reload_failed'
  | 'drop'
  | 'drop_summary'
  | 'grant'
  | 'grant_failed'
  | 'command'
  | 'firewall_restored'
  | 'firewall_error'
  | 'persist_error'
  | 'persist_ok'
  | 'verifier_exited'
  | 'verifier_restarted'
  | 'cluster_state'
  | 'cluster_open'
  | 'cluster_keyring'
  | 'cluster_keyring_refused'
  /** Debug level: written with `spad -v` only (countersReporter). */
  | 'counters'
  | 'error';

export interface AuditFields {
  reason?: string;
  detail?: string;
  source?: string;
  user?: string;
  fingerprint?: string;
  ports?: string;
  seconds?: number;
  [k: string]: unknown;
}

export interface Audit {
  log(event: AuditEvent, fields?: AuditFields): void;
  /** Flushes buffered lines (before exit). */
  flush(): void;
  /** Opens the log file again by name (after logrotate moved it); nothing for stdout. */
  reopen?(): void;
}

/** Mode of a newly created audit log file (an existing file keeps its own). */
export const AUDIT_FILE_MODE = 0o600;

/**
 * A string escaped for display, but for newlines and tabs: JSON writes those as `\n` and `\t`,
 * which no viewer acts on, and command output keeps its lines (and its byte count under the cap).
 */
function safeText(s: string): string {
  return s
    .split('\n')
    .map((line) =>
      line
        .split('\t')
        .map((p) => displaySafe(p))
        .join('\t'),
    )
    .join('\n');
}

/** `v` with every string in it escaped for display; other values as they are. */
function safeValue(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return safeText(v);
  if (depth > 4 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => safeValue(x, depth + 1));
  if (v instanceof Error) return safeText(v.message);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[displaySafe(k)] = safeValue(x, depth + 1);
  return out;
}

export function safeFields(fields: AuditFields): AuditFields {
  return safeValue(fields) as AuditFields;
}

export function createAudit(opts: { file?: string | null; verbose?: boolean } = {}): Audit {
  const dest = opts.file
    ? pino.destination({ dest: opts.file, mkdir: true, sync: false, mode: AUDIT_FILE_MODE })
    : pino.destination({ dest: 1, sync: false });
  const logger = pino(
    {
      base: { svc: 'spad' },
      level: opts.verbose ? 'debug' : 'info',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: 'event',
    },
    dest,
  );
  return {
    log(event, fields = {}) {
      const level =
        event === 'error' ||
        event === 'firewall_error' ||
        event === 'reload_failed' ||
        event === 'persist_error' ||
        event === 'verifier_exited'
          ? 'error'
          : event === 'counters'
            ? 'debug'
            : 'info';
      logger[level](safeFields(fields), event);
    },
    flush() {
      dest.flushSync();
    },
    reopen() {
      if (opts.file) dest.reopen();
    },
  };
}

/**
 * `spad -v`: a `counters` line (debug level) with the counters by reason whenever they changed
 * since the last call; the daemon calls it every second, so a flood costs one line a second.
 */
export function countersReporter(audit: Audit, counters: () => Record<string, number>): () => void {
  let last = '{}';
  return () => {
    const now = counters();
    const text = JSON.stringify(now);
    if (text === last) return;
    last = text;
    audit.log('counters', { counters: now });
  };
}

/** An audit that keeps lines in memory: for tests of the pipeline. */
export function memoryAudit(): Audit & { lines: Array<{ event: AuditEvent } & AuditFields> } {
  const lines: Array<{ event: AuditEvent } & AuditFields> = [];
  return {
    lines,
    log(event, fields = {}) {
      lines.push({ event, ...fields });
    },
    flush() {},
  };
}
