/**
 * Forwarding destinations (SPEC.md §4.6): the text form `host:port`, `[v6]:port`, `local:port`,
 * with an optional `udp/` (or `tcp/`, the default) in front. Enrollment lists them
 * (`spa-keys add --forward`), the client names one (`spa -N`), and the policy compares the two.
 */
import type { Proto } from './access.js';
import { type Address, addressEquals, formatAddress, tryParseAddress, unmapV4 } from './address.js';
import { ConfigError } from './errors.js';

/** Where a forwarding grant leads: an internal host, or `'local'` (a port on the gateway itself). */
export interface ForwardTarget {
  readonly host: Address | 'local';
  readonly port: number;
}

/** An enrollment entry: a target and the protocol it may be reached with. */
export interface ForwardRule extends ForwardTarget {
  readonly proto: Proto;
}

/** At most this many forwarding destinations per enrolled key. */
export const FORWARD_MAX_ENTRIES = 16;

function bad(field: string, text: string, why: string): never {
  throw new ConfigError('ADDRESS_INVALID', `${field}: '${text.slice(0, 60)}' ${why}`, { field });
}

/** `host:port`, `[2001:db8::10]:22` or `local:22`; no name resolution, no zone ids. */
export function parseForwardTarget(text: string, field = 'forward'): ForwardTarget {
  const t = text.trim();
  let hostText: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:([0-9]{1,5})$/.exec(t);
  const plain = /^([^:[\]]+):([0-9]{1,5})$/.exec(t);
  if (v6) [, hostText = '', portText = ''] = v6;
  else if (plain) [, hostText = '', portText = ''] = plain;
  else bad(field, t, 'is not host:port ([v6]:port for IPv6, local:port for the gateway itself)');
  const port = Number(portText);
  if (portText.startsWith('0') || port < 1 || port > 65535) bad(field, t, 'port must be 1..65535');
  if (!v6 && hostText === 'local') return { host: 'local', port };
  const a = tryParseAddress(hostText);
  if (!a || (a.family === 6) !== Boolean(v6)) bad(field, t, 'host must be an IPv4 address or [IPv6]');
  const host = unmapV4(a);
  if (host.family !== a.family) bad(field, t, 'an IPv4-mapped address must be written as IPv4');
  return { host, port };
}

export function parseForwardRule(text: string, field = 'forward'): ForwardRule {
  const m = /^(tcp|udp)\/(.*)$/.exec(text.trim());
  const proto: Proto = m?.[1] === 'udp' ? 'udp' : 'tcp';
  return { proto, ...parseForwardTarget(m ? (m[2] ?? '') : text, field) };
}

export function formatForwardTarget(t: ForwardTarget): string {
  if (t.host === 'local') return `local:${t.port}`;
  const h = formatAddress(t.host);
  return t.host.family === 6 ? `[${h}]:${t.port}` : `${h}:${t.port}`;
}

/** Canonical text: the `tcp/` prefix is left out. */
export function formatForwardRule(r: ForwardRule): string {
  return `${r.proto === 'udp' ? 'udp/' : ''}${formatForwardTarget(r)}`;
}

export function forwardTargetEquals(a: ForwardTarget, b: ForwardTarget): boolean {
  if (a.port !== b.port) return false;
  if (a.host === 'local' || b.host === 'local') return a.host === b.host;
  return addressEquals(a.host, b.host);
}

/** Comma list of rules, duplicates removed, order kept; 1..FORWARD_MAX_ENTRIES entries. */
export function parseForwardList(text: string, field = 'forward'): ForwardRule[] {
  const out: ForwardRule[] = [];
  for (const item of text.split(',').filter((s) => s.trim() !== '')) {
    const r = parseForwardRule(item, field);
    if (!out.some((q) => q.proto === r.proto && forwardTargetEquals(q, r))) out.push(r);
  }
  if (out.length === 0)
    throw new ConfigError('ADDRESS_INVALID', `${field}: empty (expected host:port)`, { field });
  if (out.length > FORWARD_MAX_ENTRIES) {
    throw new ConfigError('LIMIT_EXCEEDED', `${field}: at most ${FORWARD_MAX_ENTRIES} destinations`, {
      field,
    });
  }
  return out;
}

/** An inclusive port range, `LOW-HIGH` (the server's `gateway.random_ports`, the client's `--rand-port-range`). */
export interface PortRange {
  readonly min: number;
  readonly max: number;
}

/** `20000-29999`: two ports 1..65535 without leading zeros, LOW <= HIGH. */
export function parsePortRange(text: string, field: string): PortRange {
  const m = /^([1-9][0-9]{0,4})-([1-9][0-9]{0,4})$/.exec(text.trim());
  const min = Number(m?.[1]);
  const max = Number(m?.[2]);
  if (!m || min > max || max > 65535) {
    throw new ConfigError('USAGE', `${field}: expected LOW-HIGH within 1..65535, e.g. 20000-29999`, {
      field,
    });
  }
  return { min, max };
}

export function formatPortRange(r: PortRange): string {
  return `${r.min}-${r.max}`;
}
