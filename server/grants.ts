/**
 * What the control commands say about grants (`spad status`, `spad fw-list`) and what
 * `spad fw-flush` removes: the input firewall's grants and, in gateway mode, the forwarding
 * grants (server/firewall/forward.ts), as one list. Every entry has the same four fields, so a
 * script reading `fw-list --json` sees a forwarding grant as the port opened for its source (the
 * external port); `forward` says where it leads.
 *
 *   198.51.100.2 tcp/22 28s left
 *   198.51.100.2 tcp/40123 -> 203.0.113.10:22 28s left
 */
import type { ActiveForward, Firewall, Forwarder, Proto } from './firewall/index.js';

export interface ListedGrant {
  readonly source: string;
  readonly proto: Proto;
  /** The port opened for `source`: a forwarding grant's external port. */
  readonly port: number;
  /** Unix ms; `Number.POSITIVE_INFINITY` (JSON null) for an element without a timeout. */
  readonly expiresAt: number;
  /** Forwarding grants only: `host:port`, `[v6]:port` or `local:port`. */
  readonly forward?: string;
}

function target(f: ActiveForward): string {
  if (f.host === 'local') return `local:${f.port}`;
  return f.host.includes(':') ? `[${f.host}]:${f.port}` : `${f.host}:${f.port}`;
}

/** Input grants first, then forwarding grants. */
export async function listGrants(firewall: Firewall, forwarder: Forwarder | null): Promise<ListedGrant[]> {
  const [input, forward] = await Promise.all([firewall.list(), forwarder?.list() ?? []]);
  return [
    ...input.map((g) => ({ source: g.source, proto: g.proto, port: g.port, expiresAt: g.expiresAt })),
    ...forward.map((f) => ({
      source: f.source,
      proto: f.proto,
      port: f.externalPort,
      expiresAt: f.expiresAt,
      forward: target(f),
    })),
  ];
}

/** Removes both kinds; the protections (input drop, internal networks' drop) stay. */
export async function flushGrants(firewall: Firewall, forwarder: Forwarder | null): Promise<void> {
  await firewall.flush();
  await forwarder?.flush();
}

/** A `spad status --json` entry. */
export interface GrantStatus {
  readonly source: string;
  /** `tcp/22` */
  readonly port: string;
  readonly forward?: string;
  /** Whole seconds; null: no timeout. */
  readonly secondsLeft: number | null;
}

/** `expiresAt` null is what JSON made of an infinite one (fw-list read back over the socket). */
export function statusGrants(
  list: readonly (Omit<ListedGrant, 'expiresAt'> & { readonly expiresAt: number | null })[],
  now: number,
): GrantStatus[] {
  return list.map((g) => ({
    source: g.source,
    port: `${g.proto}/${g.port}`,
    ...(g.forward === undefined ? {} : { forward: g.forward }),
    secondsLeft:
      g.expiresAt !== null && Number.isFinite(g.expiresAt)
        ? Math.max(0, Math.round((g.expiresAt - now) / 1000))
        : null,
  }));
}

/** One line of `spad status` / `spad fw-list`: `SOURCE PROTO/PORT [-> TARGET] Ns left`. */
export function grantLine(g: GrantStatus): string {
  const left = g.secondsLeft === null ? 'no timeout' : `${g.secondsLeft}s left`;
  return `${g.source} ${g.port}${g.forward === undefined ? '' : ` -> ${g.forward}`} ${left}`;
}
