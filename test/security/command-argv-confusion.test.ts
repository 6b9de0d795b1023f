/**
 * Attack (issue #10): the command regex checks other text than what runs. A key holder whose
 * regex allows one argument smuggles more through characters that the regex treats as part of a
 * word but that a shell-words splitter treats as a separator or removes (no-break space, U+2028,
 * U+3000, U+FEFF, quotes, backslashes); or an admin's regex closes the `^(?:...)$` wrapper and
 * matches a mere prefix; or a nested quantifier stalls the daemon on a 511-byte command.
 *
 * Must hold (SPEC.md §9.5): the text the regex sees is exactly the argv that runs, the regex is
 * one well-formed expression (refused at enrollment and at keyring load otherwise), and matching
 * runs in linear time.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parseCommandRegex } from '../../keyring/policy.js';
import { parseAddress } from '../../protocol/address.js';
import { isSpaError } from '../../protocol/errors.js';
import { compileCommandRegex } from '../../protocol/command.js';
import { type Decision, decide, type UserPolicy } from '../../protocol/policy.js';
import { loadUsers } from '../../server/users.js';
import { freshPayload } from '../helpers/keys.js';
import { tempDir } from './rig.js';

const SOURCE = parseAddress('198.51.100.2');

function policyWith(regex: string): UserPolicy {
  return {
    username: 'alice',
    sources: 'any',
    openPorts: [],
    requireSourceAddress: true,
    defaultTimeout: 30,
    maxTimeout: 300,
    command: { regex: compileCommandRegex(regex), runAs: 'nobody', timeoutSeconds: 10, openPorts: [] },
  };
}

function decideCommand(regex: string, command: string): Decision {
  return decide(freshPayload({ type: 'command', access: [], command }), policyWith(regex), SOURCE);
}

function refusedAs(regex: string, command: string, code: string): void {
  assert.throws(
    () => decideCommand(regex, command),
    (e: unknown) => isSpaError(e) && e.code === code,
    `${JSON.stringify(command)} was not refused as ${code}`,
  );
}

/** The argv the server spawns for an accepted command. */
function argvOf(d: Decision): readonly string[] {
  assert.equal(d.kind, 'command');
  return d.kind === 'command' ? d.argv : [];
}

// the example: one archive, then exactly one path argument that is not an option
const TAR = 'tar -czf /backup/home\\.tgz [^ -][^ ]*';
const TAR_CMD = 'tar -czf /backup/home.tgz';

describe('the command regex checks other text than what runs', () => {
  test('extra options smuggled after a no-break space (U+00A0) are refused, not run', () => {
    const nbsp = '\u00a0';
    refusedAs(TAR, `${TAR_CMD} /home${nbsp}--checkpoint=1${nbsp}--checkpoint-action=exec=id`, 'CMD_NO_MATCH');
  });

  for (const [name, ch] of [
    ['U+2028 line separator', '\u2028'],
    ['U+2029 paragraph separator', '\u2029'],
    ['U+3000 ideographic space', '\u3000'],
    ['U+FEFF zero-width no-break space', '\ufeff'],
    ['U+1680 ogham space mark', '\u1680'],
    ['U+2003 em space', '\u2003'],
    ['U+0085 next line', '\u0085'],
  ] as const) {
    test(`an option smuggled after ${name} is refused`, () => {
      refusedAs(TAR, `${TAR_CMD} /home${ch}--checkpoint-action=exec=id`, 'CMD_NO_MATCH');
    });
  }

  test("a quoted '-x' does not pass a rule that forbids a leading dash", () => {
    refusedAs(TAR, `${TAR_CMD} '--checkpoint-action=exec=id'`, 'CMD_NO_MATCH');
    refusedAs(TAR, `${TAR_CMD} "-x"`, 'CMD_NO_MATCH');
  });

  test('a backslash-escaped \\-x does not pass a rule that forbids a leading dash', () => {
    refusedAs(TAR, `${TAR_CMD} \\--checkpoint-action=exec=id`, 'CMD_NO_MATCH');
  });

  test('shell metacharacters are refused even when a broad regex allows them', () => {
    for (const c of [
      'echo $HOME',
      'echo `id`',
      'echo a;id',
      'echo a|id',
      'echo a>f',
      'ls *',
      'ls ~',
      'a#b',
    ]) {
      refusedAs('.*', c, 'CMD_NO_MATCH');
    }
  });

  test('empty words (double, leading or trailing spaces) are refused', () => {
    for (const c of ['echo  a', ' echo a', 'echo a ']) refusedAs('.*', c, 'CMD_NO_MATCH');
  });

  test('an accepted command carries the argv the regex saw: its text split on single spaces', () => {
    const d = decideCommand(TAR, `${TAR_CMD} /home`);
    assert.deepEqual(argvOf(d), ['tar', '-czf', '/backup/home.tgz', '/home']);
  });

  test('for any text, what runs is exactly the text the regex matched (property)', () => {
    const chars = [
      ...'ab-_./=:,+@%',
      ' ',
      ' ',
      '\u00a0',
      '\u2028',
      '\u3000',
      '\ufeff',
      "'",
      '"',
      '\\',
      '$',
      '`',
      ';',
      '*',
      '#',
      '~',
      'é',
    ];
    const text = fc.array(fc.constantFrom(...chars), { minLength: 1, maxLength: 24 }).map((a) => a.join(''));
    fc.assert(
      fc.property(text, (command) => {
        let d: Decision;
        try {
          d = decideCommand('.*', command);
        } catch (e) {
          if (isSpaError(e) && e.code === 'CMD_NO_MATCH') return;
          throw e;
        }
        const argv = argvOf(d);
        assert.equal(argv.join(' '), command);
        assert.deepEqual(argv, command.split(' '));
        for (const w of argv) assert.match(w, /^[A-Za-z0-9_\-./=:,+@%]+$/);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('a command regex that escapes its ^(?:...)$ wrapper', () => {
  const escaping = ['uptime)|(reboot', 'backup-run home)|(.', 'a)(b'];

  test('is refused at enrollment (spa-keys add --cmd-regex)', () => {
    for (const re of escaping) {
      assert.throws(
        () => parseCommandRegex(re),
        (e: unknown) => isSpaError(e) && e.code === 'COMMAND_INVALID' && /--cmd-regex/.test(e.message),
        re,
      );
    }
  });

  test('is refused when compiled for the daemon, naming cmd_regex', () => {
    for (const re of escaping) {
      assert.throws(
        () => compileCommandRegex(re),
        (e: unknown) => isSpaError(e) && e.code === 'CONFIG_INVALID' && /cmd_regex/.test(e.message),
        re,
      );
    }
  });

  test('is refused when a hand-edited keyring is loaded', async () => {
    const dir = tempDir();
    const fpr = 'A'.repeat(40);
    const record = {
      fingerprint: fpr,
      username: 'alice',
      publicKey: '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nx\n-----END PGP PUBLIC KEY BLOCK-----\n',
      signingFingerprints: [fpr],
      userIds: [],
      algorithm: 'test',
      createdAt: '2025-01-01T00:00:00.000Z',
      enabled: true,
      expiresAt: null,
      sources: 'any',
      openPorts: ['tcp/22'],
      requireSourceAddress: true,
      defaultTimeout: 30,
      maxTimeout: 300,
      command: { regex: 'uptime', runAs: 'nobody', timeoutSeconds: 10, openPorts: [] },
    };
    const write = (regex: string): void =>
      writeFileSync(
        join(dir, 'keyring.json'),
        JSON.stringify({ version: 1, keys: { [fpr]: { ...record, command: { ...record.command, regex } } } }),
      );
    write('uptime');
    await loadUsers(dir); // the same file with a well-formed regex loads
    write('uptime)|(reboot');
    await assert.rejects(
      loadUsers(dir),
      (e: unknown) => isSpaError(e) && e.code === 'KEYRING_CORRUPT' && /command\.regex/.test(e.message),
    );
  });

  test('a regex that only looks unbalanced (escaped or in a class) is accepted', () => {
    for (const re of ['uptime \\)', 'uptime [)]', 'uptime [(]x[)]', '(uptime|reboot)']) parseCommandRegex(re);
  });
});

describe('a catastrophic-backtracking command regex', () => {
  const protocol = (file: string): string =>
    JSON.stringify(fileURLToPath(new URL(`../../protocol/${file}`, import.meta.url)));
  const helpers = fileURLToPath(new URL('../helpers/keys.js', import.meta.url));

  test('cannot stall the daemon: (a+)+b against 511 bytes of a then ! finishes', () => {
    // In a child process with a generous bound: a backtracking engine would take longer than the
    // universe has left, and a stuck regex cannot be interrupted from the same thread.
    const script = `
      import { compileCommandRegex } from ${protocol('command.js')};
      import { decide } from ${protocol('policy.js')};
      import { parseAddress } from ${protocol('address.js')};
      import { freshPayload } from ${JSON.stringify(helpers)};
      const command = 'a'.repeat(511) + '!';
      const policy = { username: 'alice', sources: 'any', openPorts: [], requireSourceAddress: true,
        defaultTimeout: 30, maxTimeout: 300,
        command: { regex: compileCommandRegex('(a+)+b'), runAs: 'nobody', timeoutSeconds: 10, openPorts: [] } };
      try { decide(freshPayload({ type: 'command', access: [], command }), policy, parseAddress('198.51.100.2')); }
      catch (e) { process.stdout.write(String(e.code)); }
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      timeout: 30_000,
      killSignal: 'SIGKILL',
      encoding: 'utf8',
    });
    assert.equal(r.signal, null, 'the match was still running after 30 s');
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, 'CMD_NO_MATCH');
  });
});
