/**
 * keyring/: the server allowlist and the client keystore (lowdb files, validated with zod,
 * written atomically under a lock), key inspection, generation and lookup, the `spa-keys` CLI,
 * and the CLI conventions shared by all binaries. This file is the public surface; the daemon
 * and the client import from here only.
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
// shared CLI conventions (spa, spad, spa-keys)
export {
  EXIT,
  type ExitCode,
  exitCodeFor,
  exitCodeForError,
  formatMessage,
  printError,
  printWarning,
  runCli,
  type Write,
} from '../cli/conventions.js';
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
  type CommandPolicy,
  FINGERPRINT_RE,
  type KeyRecord,
  type KeystoreFile,
  type OwnKeyRecord,
  type ServerKeyRecord,
} from './schema.js';
