/**
 * protocol/: the pure, shared wire format (SPEC.md). No file system, network, clock or ambient
 * randomness here: callers pass `now`, nonces and keys in. This file is the public surface.
 */
export * from './access.js';
export * from './address.js';
export * from './command.js';
export * from './display.js';
export * from './envelope.js';
export * from './errors.js';
export * from './forward.js';
export * from './framing.js';
export * from './fwknop.js';
export * from './limits.js';
export * from './payload.js';
export * from './pgp-config.js';
export * from './policy.js';
export * from './reply.js';
