/**
 * protocol/command.ts: the command word grammar (SPEC.md §9.5) and the command regex rules. The
 * attacks these rules stop are in test/security/command-argv-confusion.test.ts; this file pins
 * the grammar's edges and the messages.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { commandArgv, commandRegexError, compileCommandRegex } from '../../protocol/command.js';
import { COMMAND_MAX_BYTES } from '../../protocol/limits.js';

const refused = (text: string, message: RegExp): void =>
  assert.throws(
    () => commandArgv(text),
    (e: unknown) => (e as { code?: string }).code === 'CMD_NO_MATCH' && message.test((e as Error).message),
    JSON.stringify(text),
  );

describe('commandArgv', () => {
  test('splits on single spaces and keeps every allowed character', () => {
    assert.deepEqual(commandArgv('backup-run home'), ['backup-run', 'home']);
    assert.deepEqual(commandArgv('x AZaz09_-./,:=+@%'), ['x', 'AZaz09_-./,:=+@%']);
    assert.deepEqual(commandArgv('--opt=v -x'), ['--opt=v', '-x']);
  });

  test('accepts a one-word command and one of the longest', () => {
    assert.deepEqual(commandArgv('uptime'), ['uptime']);
    assert.equal(commandArgv('a '.repeat(COMMAND_MAX_BYTES / 2 - 1) + 'bb').length, COMMAND_MAX_BYTES / 2);
  });

  test('names the offending character by code point and offset', () => {
    refused('tar /home\u00a0--x', /character U\+00A0 at offset 9 is not allowed/);
    refused("a 'b'", /character ''' \(U\+0027\) at offset 2/);
    refused('a\tb', /U\+0009 at offset 1/);
    refused('a \u{1f600}', /U\+1F600 at offset 2/);
  });

  test('refuses every printable ASCII character outside the word set', () => {
    for (const c of '!"#$&\'()*;<>?[\\]^`{|}~') refused(`a${c}b`, /is not allowed/);
  });

  test('refuses empty words, naming where', () => {
    refused('', /empty/);
    refused(' a', /empty word at offset 0/);
    refused('a  b', /empty word at offset 2/);
    refused('a ', /empty word at offset 2/);
  });

  test('refuses more than COMMAND_MAX_BYTES characters', () => {
    refused('a'.repeat(COMMAND_MAX_BYTES + 1), /at most 512/);
  });
});

describe('command regexes', () => {
  test('a regex that cannot stand on its own is refused, so it cannot close the wrapper', () => {
    assert.match(commandRegexError('uptime)|(reboot') ?? '', /does not compile on its own.*Unmatched '\)'/);
    assert.match(commandRegexError('a(') ?? '', /does not compile on its own/);
    assert.equal(commandRegexError('uptime [)(]|reboot \\)'), null);
  });

  test('what the linear-time engine cannot run is refused with a reason', () => {
    for (const re of ['(a) \\1', '(?<w>a) \\k<w>', 'a(?=b)b', 'a(?!c)b', '(?<=a)b', 'a{17}', '[a-z]{1,32}']) {
      assert.match(commandRegexError(re) ?? '', /linear-time engine cannot run/, re);
    }
    for (const re of ['a{16}', '[a-z0-9-]{1,16}', '(a+)+b', '\\d+ \\w+', '(?:x|y)*']) {
      assert.equal(commandRegexError(re), null, re);
    }
  });

  test('empty and over-long regexes are refused', () => {
    assert.equal(commandRegexError(''), 'empty regex');
    assert.match(commandRegexError('a'.repeat(513)) ?? '', /longer than 512/);
  });

  test('a compiled regex matches the whole command only, with the linear-time engine', () => {
    const re = compileCommandRegex('backup-run (home|etc)');
    assert.ok(re.flags.includes('l'));
    assert.equal(re.test('backup-run home'), true);
    assert.equal(re.test('backup-run homework'), false);
    assert.equal(re.test('x backup-run home'), false);
  });

  test('compileCommandRegex refuses as CONFIG_INVALID naming the field', () => {
    assert.throws(
      () => compileCommandRegex('a)(b', 'keys.X.command.regex'),
      (e: unknown) =>
        (e as { code?: string }).code === 'CONFIG_INVALID' &&
        /^keys\.X\.command\.regex: /.test((e as Error).message),
    );
  });
});
