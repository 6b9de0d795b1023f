/**
 * The one openpgp.js configuration of the project: every openpgp.js call in protocol/, keyring/,
 * server/ and client/ passes the object made here, and the library's global config is never
 * changed. The library is a parameter, so keyring/ can keep importing openpgp.js lazily.
 *
 * A full object (the library defaults plus ours), frozen: Key methods such as `getSigningKey`
 * take the config as given, without merging the defaults in.
 */
import type * as openpgp from 'openpgp';
import { MAX_DECOMPRESSED_BYTES, RSA_MIN_BITS } from './limits.js';

type OpenPgp = Pick<typeof openpgp, 'config' | 'enums'>;

/** What we change from the openpgp.js defaults. */
export function openpgpConfig(lib: OpenPgp): openpgp.Config {
  return Object.freeze({
    ...lib.config,
    // the library's default is 2047, for keys its own old versions made one bit short
    minRSABits: RSA_MIN_BITS,
    maxDecompressedMessageSize: MAX_DECOMPRESSED_BYTES,
    preferredCompressionAlgorithm: lib.enums.compression.uncompressed,
  });
}
