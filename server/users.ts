/**
 * Builds the pipeline's view of enrolled users from the keyring allowlist (server/directory.ts):
 * an O(1) signer index and each record's policy compiled once. Keys themselves are parsed
 * lazily, on a user's first knock, by the keyring's cache; so start-up with 10,000 users parses
 * no key.
 */
import type { KeyRecord } from '../keyring/index.js';
import { loadAllowlist, publicKeyOf } from '../keyring/index.js';
import { buildDirectory, type LoadedUsers } from './directory.js';

export { type LoadedUsers, policyOf } from './directory.js';

export function directoryOf(records: ReadonlyMap<string, KeyRecord>): LoadedUsers {
  return buildDirectory(records, publicKeyOf);
}

/** Loads and compiles; throws ConfigError (KEYRING_CORRUPT, CONFIG_INVALID) on a bad keyring. */
export async function loadUsers(stateDir: string): Promise<LoadedUsers> {
  const allow = await loadAllowlist(stateDir);
  return directoryOf(allow.records);
}
