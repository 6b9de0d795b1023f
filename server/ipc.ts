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
 * start (init) and on every reload, notices of accepted knocks (for the verifier's replay
 * fast path), and in pcap mode the returning lane's datagrams. The verifier trusts its monitor.
 */
import type { GatewayPolicy } from '../protocol/policy.js';
import type { KeyRecord } from '../keyring/index.js';
import type { ReplayEntry } from './replay.js';

export type { CountersMessage, DecisionMessage, VerifierMessage } from './ipc-schema.js';

/** A decision line is ~3 kB with RSA-4096 keys; nothing the verifier says legitimately needs more. */
export const MAX_LINE_BYTES = 16 * 1024;

/** Audit events a verifier may ask the monitor to write: drops and its own errors. */
export const VERIFIER_EVENTS = ['drop', 'drop_summary', 'error'] as const;

/** What the verifier needs to run the pipeline up to the decision. */
export interface VerifierSettings {
  capture: { mode: 'pcap'; device: string } | { mode: 'udp'; host: string };
  port: number;
  maxSkewSeconds: number;
  verbose: boolean;
  /** Gateway mode's policy half (random port range); absent or null: forwarding is refused. */
  gateway?: GatewayPolicy | null;
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
  /** UDP-socket mode: send this reply (signed by the monitor, SPEC.md §12) from the SPA port. */
  | { t: 'reply'; address: string; port: number; bytes: string }
  /**
   * pcap mode: a datagram of a returning source that reached the monitor's socket on the SPA
   * port through the kernel's returning lane (reply-socket.ts), unread by the monitor: the
   * verifier handles it as it handles a captured one. `bytes` is base64, `receivedAt`
   * process.hrtime.bigint() in decimal.
   */
  | { t: 'datagram'; source: string; port: number; bytes: string; receivedAt: string }
  /** Stop capturing, finish the queue, exit. */
  | { t: 'stop' };

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
