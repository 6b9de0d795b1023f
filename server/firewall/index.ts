/**
 * Public surface of the firewall backends: `createFirewall(kind, options, runner?)` and the
 * types. The daemon holds one `Firewall`; everything it passes in is validated here before any
 * command is built (validate.ts).
 */
import { IptablesFirewall } from './iptables.js';
import { NftablesFirewall } from './nftables.js';
import { execRunner } from './runner.js';
import type { CommandRunner, Firewall, FirewallKind, FirewallOptions } from './types.js';
import { normalizeOptions } from './validate.js';

export { type ExecRunnerOptions, execRunner } from './runner.js';
export type {
  ActiveGrant,
  CommandResult,
  CommandRunner,
  Firewall,
  FirewallKind,
  FirewallOptions,
  GrantRequest,
  PortSpec,
  Proto,
} from './types.js';
export { FirewallError } from './types.js';

/**
 * Throws ConfigError (CONFIG_INVALID, ACCESS_SPEC, ADDRESS_INVALID, LIMIT_EXCEEDED) for bad
 * options. Nothing runs until init().
 */
export function createFirewall(
  kind: FirewallKind,
  opts: FirewallOptions,
  runner: CommandRunner = execRunner(),
): Firewall {
  const o = normalizeOptions(opts);
  if (kind === 'nftables') return new NftablesFirewall(o, runner);
  if (kind === 'iptables') return new IptablesFirewall(o, runner);
  throw new TypeError(`unknown firewall kind`);
}
