/**
 * Every value that reaches an nft script or an iptables-restore line passes through here first.
 * Addresses are parsed to bytes and printed back in canonical form, ports and timeouts must be
 * integers in range, protocols one of two words, names a short identifier: so no text from a
 * request or a config file is ever copied into a command, and `1.2.3.4; flush ruleset` is
 * refused as an address rather than escaped.
 */
import { isPort } from '../../protocol/access.js';
import { type Family, formatAddress, parseCidr, tryParseAddress, unmapV4 } from '../../protocol/address.js';
import { ConfigError, PolicyError } from '../../protocol/errors.js';
import { ACCESS_MAX_ENTRIES, TIMEOUT_MAX_SECONDS } from '../../protocol/limits.js';
import type { FirewallOptions, GrantRequest, PortSpec, Proto } from './types.js';

export const NAME_RE = /^[a-z][a-z0-9_]{0,15}$/;
export const DEFAULT_NAME = 'spa';
export const PROTECT_MAX = 64;
export const ALWAYS_ALLOW_MAX = 256;

/** A CIDR as both backends print it. */
export interface NormalCidr {
  readonly family: Family;
  /** canonical network address */
  readonly address: string;
  readonly prefix: number;
}

export interface NormalOptions {
  readonly name: string;
  readonly protect: readonly PortSpec[];
  readonly alwaysAllow: readonly NormalCidr[];
  /** The udp port dropped for everyone (FirewallOptions.stealthPort), or null. */
  readonly stealthPort: number | null;
  readonly now: () => number;
}

export interface NormalGrant {
  readonly family: Family;
  /** canonical text */
  readonly source: string;
  readonly ports: readonly PortSpec[];
  readonly timeoutSeconds: number;
}

function isProto(x: unknown): x is Proto {
  return x === 'tcp' || x === 'udp';
}

function portSpec(p: unknown, field: string): PortSpec {
  const o = p as { proto?: unknown; port?: unknown } | null;
  if (typeof o !== 'object' || o === null || !isProto(o.proto)) {
    throw new ConfigError('ACCESS_SPEC', `${field}: proto must be 'tcp' or 'udp'`, { field });
  }
  if (typeof o.port !== 'number' || !isPort(o.port)) {
    throw new ConfigError('ACCESS_SPEC', `${field}: port must be an integer 1..65535`, { field });
  }
  return { proto: o.proto, port: o.port };
}

/** Distinct entries, order kept. */
function portList(list: unknown, field: string, max: number): PortSpec[] {
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError('ACCESS_SPEC', `${field}: at least one proto/port is needed`, { field });
  }
  const out: PortSpec[] = [];
  for (const item of list) {
    const p = portSpec(item, field);
    if (!out.some((q) => q.proto === p.proto && q.port === p.port)) out.push(p);
  }
  if (out.length > max) {
    throw new ConfigError('LIMIT_EXCEEDED', `${field}: at most ${max} entries, got ${out.length}`, { field });
  }
  return out;
}

export function normalizeCidr(text: unknown, field = 'always_allow'): NormalCidr {
  if (typeof text !== 'string' || text.length > 64) {
    throw new ConfigError('ADDRESS_INVALID', `${field}: not an IPv4/IPv6 CIDR block`, { field });
  }
  const c = parseCidr(text, field);
  if (c.prefix === 0) {
    throw new ConfigError('ADDRESS_INVALID', `${field}: a /0 block would disable the protection`, { field });
  }
  return { family: c.family, address: formatAddress({ family: c.family, bytes: c.bytes }), prefix: c.prefix };
}

export function normalizeOptions(opts: FirewallOptions): NormalOptions {
  const name = opts.name ?? DEFAULT_NAME;
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new ConfigError('CONFIG_INVALID', `firewall name: must match ${NAME_RE.source}`, { field: 'name' });
  }
  const protect = portList(opts.protect, 'protect', PROTECT_MAX);
  if (!Array.isArray(opts.alwaysAllow)) {
    throw new ConfigError('CONFIG_INVALID', 'always_allow: must be a list of CIDRs', {
      field: 'always_allow',
    });
  }
  if (opts.alwaysAllow.length > ALWAYS_ALLOW_MAX) {
    throw new ConfigError('LIMIT_EXCEEDED', `always_allow: at most ${ALWAYS_ALLOW_MAX} entries`, {
      field: 'always_allow',
    });
  }
  const alwaysAllow: NormalCidr[] = [];
  for (const t of opts.alwaysAllow) {
    const c = normalizeCidr(t);
    if (!alwaysAllow.some((d) => d.address === c.address && d.prefix === c.prefix)) alwaysAllow.push(c);
  }
  const stealthPort = opts.stealthPort ?? null;
  if (stealthPort !== null) {
    if (typeof stealthPort !== 'number' || !isPort(stealthPort)) {
      throw new ConfigError('CONFIG_INVALID', 'stealth port: must be an integer 1..65535', {
        field: 'port',
      });
    }
    if (protect.some((p) => p.proto === 'udp' && p.port === stealthPort)) {
      // our chain drops the SPA port before any grant could match: protecting it would mean a
      // grant that opens nothing
      throw new ConfigError('CONFIG_INVALID', `protect: udp/${stealthPort} is the SPA port`, {
        field: 'protect',
      });
    }
  }
  return { name, protect, alwaysAllow, stealthPort, now: opts.now ?? Date.now };
}

/** Canonical source text and family; throws ADDRESS_INVALID. */
export function normalizeSource(source: unknown): { family: Family; source: string } {
  const parsed = typeof source === 'string' && source.length <= 45 ? tryParseAddress(source) : null;
  if (!parsed) {
    throw new ConfigError('ADDRESS_INVALID', 'source: not an IPv4 or IPv6 address', { field: 'source' });
  }
  const a = unmapV4(parsed);
  if (a.bytes.every((b) => b === 0)) {
    throw new ConfigError('ADDRESS_INVALID', 'source: the unspecified address cannot be granted', {
      field: 'source',
    });
  }
  return { family: a.family, source: formatAddress(a) };
}

export function normalizeGrant(req: GrantRequest, protect: readonly PortSpec[]): NormalGrant {
  if (typeof req !== 'object' || req === null) {
    throw new ConfigError('ACCESS_SPEC', 'grant: request missing', { field: 'grant' });
  }
  const { family, source } = normalizeSource(req.source);
  const ports = portList(req.ports, 'ports', ACCESS_MAX_ENTRIES);
  for (const p of ports) {
    if (!protect.some((q) => q.proto === p.proto && q.port === p.port)) {
      // Our chain only decides protected ports; a grant elsewhere would mean nothing (nftables)
      // or bypass the admin's own INPUT rules (iptables ACCEPT). Refuse both the same way.
      throw new PolicyError('PORT_NOT_ALLOWED', `ports: ${p.proto}/${p.port} is not a protected port`, {
        field: 'ports',
      });
    }
  }
  const t = req.timeoutSeconds;
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > TIMEOUT_MAX_SECONDS) {
    throw new ConfigError('ACCESS_SPEC', `timeout: must be an integer 1..${TIMEOUT_MAX_SECONDS} seconds`, {
      field: 'timeout',
    });
  }
  return { family, source, ports, timeoutSeconds: t };
}
