/**
 * keyring/: the server allowlist and the client keystore (lowdb files, validated with zod,
 * written atomically under a lock), key inspection, generation and lookup, and the `spa-keys`
 * CLI. This file is what server/, client/, protocol/ and cli/ import from keyring/ (eslint.config.js
 * enforces it), except three light leaves the client and the verifier import directly
 * (inspect.ts, lookup.ts, file-safety.ts): an ESM barrel loads every module it re-exports, and
 * those two keep lowdb and openpgp.js unloaded until used.
 */

// server side
export {
  ALLOWLIST_FILE,
  type Allowlist,
  addRecord,
  allowlistPath,
  buildRecord,
  DEFAULT_STATE_DIR,
  findOneRecord,
  findRecords,
  type InitOptions,
  type InitResult,
  initServer,
  loadAllowlist,
  loadServerKey,
  type NewRecordPolicy,
  publicKeyOf,
  readAllowlistFile,
  removeRecord,
  resolveStateDir,
  SERVER_KEY_FILE,
  SERVER_PUBLIC_FILE,
  serverKeyPath,
  serverPublicKeyPath,
  setEnabled,
} from './allowlist.js';
export { withLock, writeFileAtomic, writeFileExclusive } from './atomic.js';
export { generateKeyPair, KEY_TYPES, type KeyType } from './generate.js';
export { readPassphraseFile } from './file-safety.js';
// key inspection
export {
  algorithmSummary,
  assertPublic,
  checkUsable,
  describeKey,
  inspectKey,
  type KeyInfo,
  type KeyRole,
  keyIdOfFingerprint,
  normalizeFingerprint,
  parseKey,
  pgpConfig,
  type SubkeyInfo,
} from './inspect.js';
// client side
export {
  generateOwnKey,
  type ImportResult,
  importKey,
  KEYSTORE_FILE,
  type Keystore,
  keystorePath,
  openKeystore,
  resolveHome,
  resolveOwnKey,
  resolveServerKey,
} from './keystore.js';
export { classifyQuery, type Query } from './lookup.js';
export { commandRegexWarnings } from './policy.js';
export {
  type AllowlistFile,
  allowlistFileSchema,
  type CommandPolicy,
  FINGERPRINT_RE,
  type KeyRecord,
  type KeystoreFile,
  type OwnKeyRecord,
  type ServerKeyRecord,
  validateFile,
} from './schema.js';
