/**
 * Audit log: one JSON line per event (pino), to stdout or a file. Every drop has its stable
 * reason code; grants and commands say who, from where, what and for how long. Never key
 * material, packet bodies or command output beyond the capture limit.
 */
import { pino } from 'pino';

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
}

export function createAudit(opts: { file?: string | null; verbose?: boolean } = {}): Audit {
  const dest = opts.file
    ? pino.destination({ dest: opts.file, mkdir: true, sync: false })
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
        event === 'persist_error'
          ? 'error'
          : 'info';
      logger[level](fields, event);
    },
    flush() {
      dest.flushSync();
    },
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
