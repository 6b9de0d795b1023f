/**
 * Authorization (SPEC.md §9): given a verified payload, the enrolled user's policy and the
 * address the datagram came from, decide exactly what to open (or which command to run), or
 * refuse with a PolicyError. Pure: the run-as user's existence and concurrency are the server's.
 */
import { type PortSpec, portSpecEquals } from './access.js';
import { type Address, addressEquals, type Cidr, cidrContains, unmapV4 } from './address.js';
import { commandArgv } from './command.js';
import { PolicyError } from './errors.js';
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
}

export type Decision =
  | {
      readonly kind: 'access';
      readonly address: Address;
      readonly ports: readonly PortSpec[];
      readonly timeoutSeconds: number;
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

export function decide(payload: Payload, policy: UserPolicy, packetSource: Address): Decision {
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

  for (const want of payload.access) {
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
  return { kind: 'access', address, ports: payload.access, timeoutSeconds };
}
