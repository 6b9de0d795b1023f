/**
 * Marks a test or suite as slow (RSA-4096 key generation, 1,000 enrolled keys, property-based
 * runs of hundreds of knocks): `npm run test:fast` (SPA_TEST_FAST=1) skips it, `npm test` runs
 * it. Use as the options argument: `describe('...', slow, () => ...)`.
 */
export const slow: { skip?: string } =
  process.env.SPA_TEST_FAST === '1' ? { skip: 'slow: `npm test` runs it' } : {};
