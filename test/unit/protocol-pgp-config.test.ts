/**
 * One openpgp.js config for the whole project (protocol/pgp-config.ts): keyring/ gets the same
 * object protocol/ uses, with our RSA floor rather than the library's one-bit-short default, and
 * the library's global config is left as it was.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { pgpConfig } from '../../keyring/inspect.js';
import { MAX_DECOMPRESSED_BYTES, RSA_MIN_BITS } from '../../protocol/limits.js';
import { openpgpConfig } from '../../protocol/pgp-config.js';

describe('the openpgp.js config', () => {
  test('states the RSA floor and the decompression cap, frozen, without touching the global', () => {
    const before = { ...openpgp.config };
    const config = openpgpConfig(openpgp);
    assert.equal(config.minRSABits, RSA_MIN_BITS);
    assert.equal(config.maxDecompressedMessageSize, MAX_DECOMPRESSED_BYTES);
    assert.equal(config.preferredCompressionAlgorithm, openpgp.enums.compression.uncompressed);
    assert.ok(Object.isFrozen(config));
    assert.deepEqual({ ...openpgp.config }, before);
    assert.notEqual(
      openpgp.config.minRSABits,
      RSA_MIN_BITS,
      'the library default differs, so this test can fail',
    );
  });

  test('keyring/ uses the same settings as protocol/', async () => {
    assert.deepEqual({ ...(await pgpConfig()) }, { ...openpgpConfig(openpgp) });
  });
});
