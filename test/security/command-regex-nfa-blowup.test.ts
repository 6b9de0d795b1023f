/**
 * Attack (issue #10, item 1, review): a command regex the linear-time engine accepts but whose
 * automaton is huge. V8's engine refuses counted repetition above {16}, yet `(?:.?.?…){16}` is
 * 508 characters that unroll to 4000 positions, every one of them live on every byte of the
 * command: one 512-byte knock by the enrolled user then held spad's event loop for more than a
 * second (linear in the command's length, but with a factor of 4000). Matching time is bounded
 * by the regex's unrolled size, so that size is bounded at enrollment and at load.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  COMMAND_REGEX_MAX_POSITIONS,
  commandRegexError,
  compileCommandRegex,
} from '../../protocol/command.js';
import { isSpaError } from '../../protocol/errors.js';
import { commandPolicySchema } from '../../keyring/schema.js';

const blowups = [
  `(?:${'.?'.repeat(250)}){16}`,
  `(?:${'[^!]?'.repeat(100)}){16}`,
  `${'.{0,16}'.repeat(70)}`,
  `(?:(?:${'a?'.repeat(20)}){16}|b)+`,
];

describe('a command regex whose unrolled automaton is huge', () => {
  test('is refused with a reason that names the size', () => {
    for (const re of blowups) {
      assert.ok(re.length <= 512, 'the attack fits the length limit');
      assert.match(
        commandRegexError(re) ?? '',
        /positions once its repetitions are unrolled/,
        re.slice(0, 30),
      );
    }
  });

  test('is refused when spad compiles it (CONFIG_INVALID) and when a keyring lists it', () => {
    assert.throws(
      () => compileCommandRegex(blowups[0] ?? ''),
      (e) => isSpaError(e) && e.code === 'CONFIG_INVALID',
    );
    const record = { regex: blowups[0], runAs: 'backup', timeoutSeconds: 60, openPorts: [] };
    const r = commandPolicySchema.safeParse(record);
    assert.equal(r.success, false);
    assert.match(JSON.stringify(r.error?.issues), /positions once its repetitions are unrolled/);
  });

  test('ordinary regexes, the widest counted classes and any regex without counting stay accepted', () => {
    for (const re of [
      'backup-run (daily|weekly) [a-z0-9-]{1,16}',
      'tar -czf /backup/home\\.tgz [^ -][^ ]*',
      '[a-z]{1,16}( [a-z]{1,16})*',
      '(a+)+b',
      '.*'.repeat(256),
      `(?:${'x|'.repeat(253)}y)`,
    ]) {
      assert.equal(commandRegexError(re), null, re.slice(0, 40));
    }
    assert.ok(COMMAND_REGEX_MAX_POSITIONS >= 512);
  });
});
