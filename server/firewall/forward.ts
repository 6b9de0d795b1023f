/**
 * Gateway mode (SPEC.md §4.6, §9.6): forwarding grants. A grant lets one source address reach an
 * internal host's port (or a port on the gateway itself) through an external port of the
 * gateway, for a while: a DNAT (or REDIRECT) for that source and external port only, the forward
 * path to that host:port only for DNATed connections, and the return path. Live connections
 * outlast the grant (conntrack keeps their NAT binding; established traffic is let through).
 *
 * This file: the `Forwarder` vocabulary and the validation every request passes before any
 * command is built. The backends: forward-nft.ts (a table of its own, elements with timeouts)
 * and forward-ipt.ts (chains of their own, swept on a timer); `createForwarder` in index.ts.
 * IPv4 and IPv6 are both supported (IPv6 with the same DNAT, i.e. NAT66 of the port only); a
 * grant never mixes families.
 */
import { type Address, formatAddress, parseCidr, tryParseAddress, unmapV4 } from '../../protocol/address.js';
import type { Family } from '../../protocol/address.js';
import { ConfigError } from '../../protocol/errors.js';
import type { FirewallKind, Proto } from './types.js';
import { DEFAULT_NAME, NAME_RE, normalizeSource } from './validate.js';

export interface ForwardOptions {
  /** As the input firewall's name: table `inet <name>_gw`, chains `<NAME>_GW_PRE/_GW_FWD`. */
  name?: string;
  /** CIDRs behind the gateway: forwarded traffic to them is dropped unless granted. 1..256. */
  internal: readonly string[];
  now?: () => number;
}

export interface ForwardGrantRequest {
  /** The client's address (IPv4 or IPv6 text). */
  source: string;
  proto: Proto;
  /** Port on the gateway the client connects to. */
  externalPort: number;
  /** Internal host (same family as source), or 'local' for a port on the gateway itself. */
  host: string;
  port: number;
  timeoutSeconds: number;
}

export interface ActiveForward {
  source: string;
  proto: Proto;
  externalPort: number;
  /** Canonical address text, or 'local'. */
  host: string;
  port: number;
  /** Unix ms (nftables: to about one second). */
  expiresAt: number;
}

export interface Forwarder {
  readonly backend: FirewallKind;
  /** Idempotent: installs table/chains and the internal drop, keeps unexpired grants. */
  init(): Promise<void>;
  /** One atomic change; a grant for the same (source, proto, external port) replaces the old one. */
  grant(req: ForwardGrantRequest): Promise<void>;
  list(): Promise<ActiveForward[]>;
  /** iptables: removes grants expired at `now`; nftables: 0 (the kernel expires them). */
  sweep(now: number): Promise<number>;
  flush(): Promise<void>;
  healthy(): Promise<boolean>;
  /** removeProtections: delete everything ours. Otherwise the drop stays; iptables grants go. */
  shutdown(opts: { removeProtections: boolean }): Promise<void>;
}

export interface NormalForwardOptions {
  name: string;
  internal: { family: Family; text: string }[];
  now: () => number;
}

export interface NormalForward {
  family: Family;
  source: string;
  proto: Proto;
  externalPort: number;
  /** canonical text or 'local' */
  host: string;
  port: number;
  timeoutSeconds: number;
}

const INTERNAL_MAX = 256;

function cfgError(field: string, msg: string): never {
  throw new ConfigError('CONFIG_INVALID', `${field}: ${msg}`, { field });
}

export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

export function normalizeForwardOptions(o: ForwardOptions): NormalForwardOptions {
  const name = o.name ?? DEFAULT_NAME;
  if (!NAME_RE.test(name)) cfgError('name', `must match ${NAME_RE.source}`);
  if (!Array.isArray(o.internal) || o.internal.length < 1 || o.internal.length > INTERNAL_MAX) {
    cfgError('gateway.internal', `1..${INTERNAL_MAX} CIDR blocks`);
  }
  const internal = o.internal.map((t) => {
    const c = parseCidr(String(t), 'gateway.internal');
    if (c.prefix < 1) cfgError('gateway.internal', 'a /0 would drop all forwarding');
    const a = formatAddress({ family: c.family, bytes: c.bytes });
    return { family: c.family, text: `${a}/${c.prefix}` };
  });
  return { name, internal, now: o.now ?? Date.now };
}

export function normalizeForward(req: ForwardGrantRequest): NormalForward {
  const { family, source } = normalizeSource(req.source);
  if (req.proto !== 'tcp' && req.proto !== 'udp') {
    throw new ConfigError('ACCESS_SPEC', 'forward: proto must be tcp or udp', { field: 'proto' });
  }
  if (!isPort(req.externalPort) || !isPort(req.port)) {
    throw new ConfigError('ACCESS_SPEC', 'forward: ports must be 1..65535', { field: 'port' });
  }
  if (!Number.isInteger(req.timeoutSeconds) || req.timeoutSeconds < 1 || req.timeoutSeconds > 86_400) {
    throw new ConfigError('ACCESS_SPEC', 'forward: timeout must be 1..86400 s', { field: 'timeout' });
  }
  let host = 'local';
  if (req.host !== 'local') {
    const parsed: Address | null = typeof req.host === 'string' ? tryParseAddress(req.host) : null;
    if (!parsed)
      throw new ConfigError('ADDRESS_INVALID', 'forward: host is not an address', { field: 'host' });
    const a = unmapV4(parsed);
    if (a.family !== family) {
      throw new ConfigError('ADDRESS_INVALID', 'forward: host and source differ in family', {
        field: 'host',
      });
    }
    if (a.bytes.every((b) => b === 0)) {
      throw new ConfigError('ADDRESS_INVALID', 'forward: unspecified host', { field: 'host' });
    }
    host = formatAddress(a);
  }
  return {
    family,
    source,
    proto: req.proto,
    externalPort: req.externalPort,
    host,
    port: req.port,
    timeoutSeconds: req.timeoutSeconds,
  };
}
