/**
 * The firewall vocabulary spad needs, and nothing more: install protections, open one exact
 * source/proto/port for a while, list, flush, sweep, check, remove. Two backends implement it
 * (nftables.ts, iptables.ts); both take their commands through a `FirewallExec`, so unit tests
 * see the exact nft script or iptables-restore input without running anything, and e2e tests run
 * the real binaries inside a network namespace.
 */
import type { PortSpec, Proto } from '../../protocol/access.js';
import { SpaError } from '../../protocol/errors.js';

export type { PortSpec, Proto };

export type FirewallKind = 'nftables' | 'iptables';

export interface GrantRequest {
  /** IPv4 or IPv6 text; IPv4-mapped IPv6 is folded to IPv4. Opened as /32 or /128 only. */
  source: string;
  /** 1..16 distinct entries, each one a protected port. */
  ports: readonly PortSpec[];
  /** Whole seconds, 1..86400. */
  timeoutSeconds: number;
}

export interface ActiveGrant {
  /** Canonical text (dotted quad or RFC 5952). */
  source: string;
  proto: Proto;
  port: number;
  /**
   * Unix ms. nftables reports whole seconds left, so this is exact to about one second;
   * `Number.POSITIVE_INFINITY` for an element someone added without a timeout.
   */
  expiresAt: number;
}

export interface FirewallOptions {
  /** Ports dropped for everyone not granted or always allowed. At least one. */
  protect: readonly PortSpec[];
  /** CIDRs (IPv4/IPv6, host bits zero, prefix >= 1) never dropped on protected ports. */
  alwaysAllow: readonly string[];
  /**
   * nftables table name (`inet <name>`) and, upper-cased, the iptables chain `<NAME>_INPUT`.
   * `^[a-z][a-z0-9_]{0,15}$`, default 'spa'.
   */
  name?: string;
  /**
   * pcap mode only: the SPA port (udp), dropped by our chain for everyone, IPv4 and IPv6, as its
   * first rule, so a probe of it gets no answer of any kind (without it the kernel answers ICMP
   * port unreachable, since nothing listens). libpcap sees frames before netfilter, so knocks
   * are still read. Never set with the UDP socket (`--udp-server`), which needs the port open.
   * Must not be a protected port.
   */
  stealthPort?: number;
  /** Clock, unix ms; default Date.now. */
  now?: () => number;
}

export interface Firewall {
  readonly backend: FirewallKind;
  /**
   * Idempotent: installs the table/chain, the stealth drop of the SPA port (when given), the
   * protected ports and the always-allow CIDRs in one
   * atomic step, keeps unexpired grants, removes stale ones (iptables) and fixes the jump.
   */
  init(): Promise<void>;
  /** One atomic change for all ports; re-granting an element sets its timeout anew. */
  grant(req: GrantRequest): Promise<void>;
  /** Grants present now (iptables: also expired ones not yet swept); [] without our table/chain. */
  list(): Promise<ActiveGrant[]>;
  /**
   * pcap mode, nftables only: puts sources back in the returning lane (nft-ruleset.ts) for the
   * seconds given, as a grant of theirs would have; start-up calls it with the sources the replay
   * store remembers. An address that is not one is skipped.
   */
  returning?(sources: readonly { source: string; seconds: number }[]): Promise<void>;
  /** Removes every grant; protections stay. */
  flush(): Promise<void>;
  /** Removes grants expired at `now` (iptables); nftables expires in the kernel and returns 0. */
  sweep(now: number): Promise<number>;
  /** False when our table/chain/jump/protections were removed or altered: call init() again. */
  healthy(): Promise<boolean>;
  /**
   * removeProtections: delete our table/chain entirely. Otherwise protections stay (fail
   * closed); nftables grants stay too (the kernel expires them), iptables grants are removed
   * since nobody would sweep them.
   */
  shutdown(opts: { removeProtections: boolean }): Promise<void>;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one firewall program (nft, iptables) with an argv array (never a shell); `input` goes to
 * stdin. Never rejects. Not the runner of users' commands (act.ts UserCommandRunner).
 */
export interface FirewallExec {
  run(cmd: string, args: readonly string[], input?: string): Promise<CommandResult>;
  /** Releases a long-lived helper process, if the runner keeps one (nftShellRunner). */
  close?(): void;
}

/** A firewall command failed or printed something we cannot trust. */
export class FirewallError extends SpaError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super('FW_ERROR', message, opts);
  }
}
