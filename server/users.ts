/**
 * Builds the pipeline's view of enrolled users from the keyring allowlist: an O(1) signer index
 * (every signing-capable key fingerprint → its record) and each record's policy compiled once
 * (CIDRs parsed, ports parsed, command regex compiled). Keys themselves are parsed lazily, on a
 * user's first knock, by the keyring's cache; so start-up with 10,000 users parses no key.
 */
import type { KeyRecord } from '../keyring/index.js';
import { loadAllowlist, publicKeyOf } from '../keyring/index.js';
import { parsePortSpec } from '../protocol/access.js';
import { parseCidr } from '../protocol/address.js';
import type { SignerEntry } from '../protocol/envelope.js';
import { compileCommandRegex } from '../protocol/command.js';
import type { UserPolicy } from '../protocol/policy.js';
import type { UserDirectory } from './pipeline.js';

export function policyOf(r: KeyRecord): UserPolicy {
  return {
    username: r.username,
    sources: r.sources === 'any' ? 'any' : r.sources.map((c) => parseCidr(c, 'sources')),
    openPorts: r.openPorts.map((p) => parsePortSpec(p, 'openPorts')),
    requireSourceAddress: r.requireSourceAddress,
    defaultTimeout: r.defaultTimeout,
    maxTimeout: r.maxTimeout,
    command: r.command
      ? {
          regex: compileCommandRegex(r.command.regex),
          runAs: r.command.runAs,
          timeoutSeconds: r.command.timeoutSeconds,
          openPorts: r.command.openPorts.map((p) => parsePortSpec(p, 'command.openPorts')),
        }
      : null,
  };
}

export interface LoadedUsers extends UserDirectory {
  readonly count: number;
  readonly records: ReadonlyMap<string, KeyRecord>;
}

export function directoryOf(records: ReadonlyMap<string, KeyRecord>): LoadedUsers {
  const signers = new Map<string, SignerEntry>();
  const policies = new Map<string, UserPolicy>();
  for (const r of records.values()) {
    const entry: SignerEntry = {
      fingerprint: r.fingerprint,
      enabled: r.enabled,
      expiresAt: r.expiresAt ? new Date(r.expiresAt) : null,
      getKey: () => publicKeyOf(r),
    };
    for (const f of r.signingFingerprints) signers.set(f, entry);
    signers.set(r.fingerprint, entry);
    policies.set(r.fingerprint, policyOf(r));
  }
  return {
    count: records.size,
    records,
    lookupSigner: (fpr) => signers.get(fpr),
    policy: (fpr) => policies.get(fpr),
  };
}

/** Loads and compiles; throws ConfigError (KEYRING_CORRUPT, CONFIG_INVALID) on a bad keyring. */
export async function loadUsers(stateDir: string): Promise<LoadedUsers> {
  const allow = await loadAllowlist(stateDir);
  return directoryOf(allow.records);
}
