/**
 * Public surface of the firewall backends: `createFirewall(kind, options, runner?)` and the
 * types. The daemon holds one `Firewall`; everything it passes in is validated here before any
 * command is built (validate.ts).
 */
import { type Forwarder, type ForwardOptions, normalizeForwardOptions } from './forward.js';
import { IptForwarder } from './forward-ipt.js';
import { NftForwarder } from './forward-nft.js';
import { IptablesFirewall } from './iptables.js';
import { nftShellRunner } from './nft-shell.js';
import { NftablesFirewall } from './nftables.js';
import { execRunner } from './runner.js';
import type { FirewallExec, Firewall, FirewallKind, FirewallOptions } from './types.js';
import { normalizeOptions } from './validate.js';

export { type NftShellRunner, nftShellRunner } from './nft-shell.js';
export { type ExecRunnerOptions, execRunner } from './runner.js';
export type {
  ActiveGrant,
  CommandResult,
  FirewallExec,
  Firewall,
  FirewallKind,
  FirewallOptions,
  GrantRequest,
  PortSpec,
  Proto,
} from './types.js';
export { FirewallError } from './types.js';

/**
 * Without a runner, nftables changes go through one long-lived `nft -i` (nft-shell.ts; listings
 * still spawn `nft -j`), iptables commands are spawned one by one. Pass
 * `execRunner({ netns })` or `nftShellRunner({ netns })` to work inside a namespace.
 * Throws ConfigError (CONFIG_INVALID, ACCESS_SPEC, ADDRESS_INVALID, LIMIT_EXCEEDED) for bad
 * options. Nothing runs until init().
 */
export function createFirewall(kind: FirewallKind, opts: FirewallOptions, runner?: FirewallExec): Firewall {
  const o = normalizeOptions(opts);
  if (kind === 'nftables') return new NftablesFirewall(o, runner ?? nftShellRunner());
  if (kind === 'iptables') return new IptablesFirewall(o, runner ?? execRunner());
  throw new TypeError(`unknown firewall kind`);
}

export type { ActiveForward, ForwardGrantRequest, Forwarder, ForwardOptions } from './forward.js';

/** Gateway mode's forwarder (forward.ts). Nothing runs until init(). Throws CONFIG_INVALID / ADDRESS_INVALID for bad options. */
export function createForwarder(kind: FirewallKind, opts: ForwardOptions, runner: FirewallExec): Forwarder {
  const o = normalizeForwardOptions(opts);
  if (kind === 'nftables') return new NftForwarder(o, runner);
  return new IptForwarder(o, runner);
}
