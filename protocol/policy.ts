/**
 * Authorization (SPEC.md §9): given a verified payload, the enrolled user's policy and the
 * address the datagram came from, decide exactly what to open (or which command to run), or
 * refuse with a PolicyError. Pure: the run-as user's existence and concurrency are the server's.
 */
import { type PortSpec, portSpecEquals } from './access.js';
import { type Address, addressEquals, type Cidr, cidrContains, unmapV4 } from './address.js';
import { commandArgv } from './command.js';
import { PolicyError } from './errors.js';
import { type ForwardRule, type ForwardTarget, forwardTargetEquals } from './forward.js';
import type { Payload } from './payload.js';

export interface CommandPolicy {
  /** Compiled with compileCommandRegex (command.ts): anchored, linear-time engine. */
  readonly regex: RegExp;
  readonly runAs: string;
  readonly timeoutSeconds: number;
  /** Opened for the source around the command (open, run, close); may be empty. */
  readonly openPorts: readonly PortSpec[];
}

export interface UserPolicy {
  readonly username: string;
  readonly sources: 'any' | readonly Cidr[];
  readonly openPorts: readonly PortSpec[];
  readonly requireSourceAddress: boolean;
  readonly defaultTimeout: number;
  readonly maxTimeout: number;
  readonly command: CommandPolicy | null;
  /** Internal destinations this user may ask a forwarding grant to (§9.6); absent = none. */
  readonly forward?: readonly ForwardRule[];
  /** May ask for a signed reply (§12); absent = false. */
  readonly reply?: boolean;
}

/** The server's side of gateway mode; null or absent: spad forwards nothing. */
export interface GatewayPolicy {
  /** Inclusive range a `--rand-port` external port must fall in. */
  readonly randomPorts: { readonly min: number; readonly max: number };
}

/** A forwarding grant: `ports[0]` (external, on the gateway) leads to `target`. */
export interface ForwardDecision {
  readonly target: ForwardTarget;
  readonly randomPort: boolean;
}

export type Decision =
  | {
      readonly kind: 'access';
      readonly address: Address;
      readonly ports: readonly PortSpec[];
      readonly timeoutSeconds: number;
      /** Set for a forwarding grant (then `ports` has the one external port). */
      readonly forward?: ForwardDecision;
      /** The knock asked for, and may have, a signed reply. */
      readonly reply?: boolean;
    }
  | {
      readonly kind: 'command';
      readonly address: Address;
      /** The text the regex matched; always `argv.join(' ')`. */
      readonly command: string;
      /** Exactly what runs (no shell, no second parse): the words the regex saw. */
      readonly argv: readonly string[];
      readonly runAs: string;
      readonly timeoutSeconds: number;
      readonly ports: readonly PortSpec[];
    };

function refuseForward(why: string): never {
  throw new PolicyError('FORWARD_NOT_ALLOWED', `forward: ${why}`, { field: 'forward' });
}

export function decide(
  payload: Payload,
  policy: UserPolicy,
  packetSource: Address,
  gateway: GatewayPolicy | null = null,
): Decision {
  if (payload.username !== policy.username) {
    throw new PolicyError('USER_MISMATCH', 'payload username: does not match the enrolled user', {
      field: 'username',
    });
  }
  const from = unmapV4(packetSource);
  let address: Address;
  if (payload.source === 'any') {
    if (policy.requireSourceAddress) {
      throw new PolicyError(
        'SOURCE_ANY_REFUSED',
        'payload address: "any" refused, this user must name the source address',
        {
          field: 'address',
        },
      );
    }
    address = from;
  } else {
    if (policy.requireSourceAddress && !addressEquals(payload.source, from)) {
      throw new PolicyError('SOURCE_MISMATCH', 'payload address: differs from the packet source', {
        field: 'address',
      });
    }
    address = unmapV4(payload.source);
  }
  if (policy.sources !== 'any' && !policy.sources.some((c) => cidrContains(c, from))) {
    throw new PolicyError('SOURCE_NOT_ALLOWED', 'packet source: outside the sources allowed for this user', {
      field: 'source',
    });
  }

  if (payload.type === 'command') {
    const cmd = policy.command;
    if (!cmd)
      throw new PolicyError('CMD_NOT_ALLOWED', 'command: this user may not run commands', {
        field: 'command',
      });
    // The regex sees the argv joined by single spaces, which is the whole text: commandArgv
    // refuses every text for which that would not be so (SPEC.md §9.5).
    const argv = commandArgv(payload.command ?? '');
    const text = argv.join(' ');
    // A fresh lastIndex every time: the regex has no g/y flag, so test() is stateless.
    if (!cmd.regex.test(text)) {
      throw new PolicyError('CMD_NO_MATCH', 'command: does not match the allowed pattern', {
        field: 'command',
      });
    }
    return {
      kind: 'command',
      address,
      command: text,
      argv,
      runAs: cmd.runAs,
      timeoutSeconds: cmd.timeoutSeconds,
      ports: cmd.openPorts,
    };
  }

  if (payload.reply === true && policy.reply !== true) {
    throw new PolicyError('REPLY_NOT_ALLOWED', 'reply: this user may not ask for a signed reply', {
      field: 'reply',
    });
  }
  const fwd = payload.forward;
  if (fwd) {
    const want = payload.access[0];
    if (!gateway) refuseForward('this server forwards nothing');
    if (!want) refuseForward('no external port');
    if (!(policy.forward ?? []).some((r) => r.proto === want.proto && forwardTargetEquals(r, fwd))) {
      refuseForward('destination not enrolled for this user');
    }
    if (fwd.host !== 'local' && fwd.host.family !== address.family) {
      refuseForward('internal host and client address are of different families');
    }
    if (fwd.randomPort && (want.port < gateway.randomPorts.min || want.port > gateway.randomPorts.max)) {
      refuseForward(
        `external port ${want.port} outside ${gateway.randomPorts.min}-${gateway.randomPorts.max}`,
      );
    }
  }
  // A random external port is checked against the server's range above, not open_ports.
  for (const want of fwd?.randomPort === true ? [] : payload.access) {
    if (!policy.openPorts.some((p) => portSpecEquals(p, want))) {
      throw new PolicyError(
        'PORT_NOT_ALLOWED',
        `access: ${want.proto}/${want.port} is not allowed for this user`,
        {
          field: 'access',
        },
      );
    }
  }
  const timeoutSeconds = payload.timeoutSeconds === 0 ? policy.defaultTimeout : payload.timeoutSeconds;
  if (timeoutSeconds > policy.maxTimeout) {
    throw new PolicyError(
      'TIMEOUT_NOT_ALLOWED',
      `timeout: ${timeoutSeconds} s exceeds this user's maximum of ${policy.maxTimeout} s`,
      {
        field: 'timeout',
      },
    );
  }
  return {
    kind: 'access',
    address,
    ports: payload.access,
    timeoutSeconds,
    ...(fwd ? { forward: { target: { host: fwd.host, port: fwd.port }, randomPort: fwd.randomPort } } : {}),
    ...(payload.reply === true ? { reply: true } : {}),
  };
}
