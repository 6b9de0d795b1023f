/**
 * The pipeline's view of enrolled users, built from allowlist records: an O(1) signer index
 * (every signing-capable key fingerprint → its record) and each record's policy compiled once
 * (CIDRs parsed, ports parsed, command regex compiled). Keys are parsed lazily by `keyOf`, on a
 * user's first knock. No runtime import of keyring/: spad's verifier builds its directory from
 * the records its monitor sends, and loading the keyring modules (zod, lowdb) would cost each
 * verifier start a quarter of a second. server/users.ts adds the keyring's own key cache.
 */
import type * as openpgp from 'openpgp';
import type { KeyRecord } from '../keyring/index.js';
import { parsePortSpec } from '../protocol/access.js';
import { parseCidr } from '../protocol/address.js';
import { parseForwardRule } from '../protocol/forward.js';
import type { SignerEntry } from '../protocol/envelope.js';
import { compileCommandRegex } from '../protocol/command.js';
import type { FwknopEnrollment, FwknopHmacKey } from '../protocol/fwknop.js';
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
    ...(r.forward ? { forward: r.forward.map((f) => parseForwardRule(f, 'forward')) } : {}),
    ...(r.reply === true ? { reply: true } : {}),
  };
}

export interface LoadedUsers extends UserDirectory {
  readonly count: number;
  readonly records: ReadonlyMap<string, KeyRecord>;
}

export function buildDirectory(
  records: ReadonlyMap<string, KeyRecord>,
  keyOf: (r: KeyRecord) => Promise<openpgp.PublicKey>,
): LoadedUsers {
  const signers = new Map<string, SignerEntry>();
  const policies = new Map<string, UserPolicy>();
  const fwknop = new Map<string, FwknopEnrollment>();
  const hmacKeys: FwknopHmacKey[] = [];
  let acceptWithoutHmac = false;
  for (const r of records.values()) {
    if (r.fwknop) {
      fwknop.set(r.fingerprint, {
        username: r.username,
        hmac: r.fwknop.hmacKey !== null,
        requireUsername: r.fwknop.requireUsername,
      });
      if (r.fwknop.hmacKey === null) acceptWithoutHmac = true;
      else hmacKeys.push({ id: r.fingerprint, key: new Uint8Array(Buffer.from(r.fwknop.hmacKey, 'base64')) });
    }
    const entry: SignerEntry = {
      fingerprint: r.fingerprint,
      enabled: r.enabled,
      expiresAt: r.expiresAt ? new Date(r.expiresAt) : null,
      getKey: () => keyOf(r),
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
    ...(fwknop.size > 0 ? { fwknop: { hmacKeys, acceptWithoutHmac, of: (fpr) => fwknop.get(fpr) } } : {}),
  };
}
