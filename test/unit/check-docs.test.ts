/**
 * scripts/check-docs.ts: the repository's documents pass, and each kind of drift it is meant to
 * catch is caught when planted in a copy (the drift an earlier review found among them).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  checkCitations,
  checkConfigCodes,
  checkConfigKeys,
  checkDropCodes,
  checkLimits,
  checkRsaFloor,
  checkServerLimits,
  checkSpecRefs,
} from '../../scripts/check-docs.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const spec = readFileSync(`${root}/SPEC.md`, 'utf8');
const readme = readFileSync(`${root}/README.md`, 'utf8');
const security = readFileSync(`${root}/SECURITY.md`, 'utf8');
const one = (path: string, text: string): Map<string, string> => new Map([[path, text]]);
const inRepo = (p: string): boolean => existsSync(`${root}/${p}`);

describe('check-docs', () => {
  test('SPEC.md and README.md as committed agree with the code', () => {
    assert.deepEqual(checkDropCodes(spec), []);
    assert.deepEqual(checkConfigCodes(spec), []);
    assert.deepEqual(checkLimits(spec), []);
    assert.deepEqual(checkConfigKeys(readme), []);
    assert.deepEqual(checkSpecRefs(spec, one('SPEC.md', spec)), []);
    const docs = new Map([
      ['SPEC.md', spec],
      ['README.md', readme],
      ['SECURITY.md', security],
    ]);
    assert.deepEqual(checkRsaFloor(docs), []);
    assert.deepEqual(checkServerLimits(docs), []);
  });

  test('a drop code the code has and SPEC.md §7 lost is caught, and one SPEC names that the code lacks', () => {
    assert.match(
      checkDropCodes(spec.replace('`REPLAY_RAW`', 'none')).join('\n'),
      /REPLAY_RAW is not in SPEC/,
    );
    assert.match(
      checkDropCodes(spec.replace('`FW_ERROR`', '`FW_ERROR`, `FW_GONE`')).join('\n'),
      /names FW_GONE, which protocol\/errors.ts has not/,
    );
  });

  test('a local error code missing from SPEC.md §8 is caught (INTERNAL-style omissions)', () => {
    assert.match(checkConfigCodes(spec.replace('`USAGE`', 'USAGE')).join('\n'), /USAGE is not listed/);
  });

  test('a limit in SPEC.md §5 that differs from protocol/limits.ts is caught', () => {
    assert.match(
      checkLimits(spec.replace('| datagram | 64..1400 bytes', '| datagram | 64..1500 bytes')).join('\n'),
      /"datagram" says 64\.\.1500/,
    );
  });

  test('an RSA floor in a document that differs from RSA_MIN_BITS, or SPEC.md without one, is caught', () => {
    assert.match(
      checkRsaFloor(one('SECURITY.md', security.replace('RSA < 2048 bits', 'RSA < 1024 bits'))).join('\n'),
      /SECURITY\.md says RSA keys need 1024 bits; protocol\/limits\.ts says 2048/,
    );
    assert.match(
      checkRsaFloor(one('SPEC.md', spec.replace('at least 2048 bits', 'at least 3072 bits'))).join('\n'),
      /SPEC\.md says RSA keys need 3072 bits/,
    );
    assert.deepEqual(checkRsaFloor(one('SPEC.md', 'RSA is accepted.')), [
      'SPEC.md does not state the RSA floor',
    ]);
  });

  test('a figure of server/limits.ts that README.md or SECURITY.md states otherwise, or no longer states, is caught', () => {
    assert.match(
      checkServerLimits(one('README.md', readme.replace('Past 50 junk', 'Past 500 junk'))).join('\n'),
      /README\.md says "Past 500 junk datagrams a second"; server\/limits\.ts says 50/,
    );
    assert.match(
      checkServerLimits(
        one('SECURITY.md', security.replace('at most 200 a second', 'at most 2,000 a second')),
      ).join('\n'),
      /SECURITY\.md no longer says .*200/,
    );
  });

  test('a citation of a SPEC.md section or §7 step that does not exist is caught', () => {
    assert.match(
      checkSpecRefs(spec, one('protocol/framing.ts', 'framing check (SPEC.md §6.1)')).join('\n'),
      /§6\.1, which does not exist/,
    );
    assert.match(
      checkSpecRefs(spec, one('x.ts', 'freshness (SPEC.md §7 step 17)')).join('\n'),
      /§7 step 17, which does not exist/,
    );
    assert.match(checkSpecRefs(spec, one('x.ts', 'limits (SPEC.md §3, §15)')).join('\n'), /§15/);
    assert.deepEqual(checkSpecRefs(spec, one('x.ts', 'SPEC.md §9.5 and SPEC.md §7 steps 8-12')), []);
  });

  test('a config key the schema has and README.md does not list is caught', () => {
    const without = readme.replace(/, `table` \([^)]*\)/, '');
    assert.notEqual(without, readme);
    assert.match(checkConfigKeys(without).join('\n'), /does not list config key table/);
  });

  test('a cited document that is not in the repository, or a path outside it, is caught', () => {
    assert.match(
      checkCitations(one('client/program.ts', 'the CLI (DESIGN.md §3)'), inRepo).join('\n'),
      /cites DESIGN\.md/,
    );
    const outside = ['..', 'shared', 'reference', 'fwknop.md'].join('/');
    assert.match(checkCitations(one('x.ts', `see ${outside}`), inRepo).join('\n'), /outside the repository/);
    assert.deepEqual(checkCitations(one('x.ts', 'see SPEC.md and SECURITY.md'), inRepo), []);
  });
});
