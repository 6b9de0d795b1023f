/**
 * client/: the `spa` knock client. Public surface: the knock library (prepare, seal, send), the
 * pieces it is made of (settings, rc stanzas, source address, transport, gpg, connect/relay) and
 * the commander program. Only this folder and server/ touch the network.
 */

export * from './connect.js';
export * from './gpg.js';
export * from './gpg-keys.js';
export * from './gpg-run.js';
export * from './keys.js';
export * from './knock.js';
export * from './passphrase.js';
export { buildProgram, type ClientIo } from './program.js';
export * from './rc.js';
export * from './settings.js';
export * from './source.js';
export * from './transport.js';
