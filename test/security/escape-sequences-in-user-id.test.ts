/**
 * Attack: text from a key or a packet that acts on the admin's terminal. A user id is chosen by
 * whoever made the key; `spa-keys add` prints it just before asking "Does this fingerprint match
 * ...". With ESC[A ESC[2K (cursor up, erase line) the user id overwrites the real fingerprint line
 * with a fake one; with U+202E (right-to-left override) it reads backwards. Usernames, commands
 * and command output reach the audit log and `spa -v` the same way; JSON escapes C0 controls but
 * not DEL, C1 (0x9b is a one-byte CSI) or bidi controls. Every such string must be printed with
 * those characters escaped, and the fingerprint must be the line right above the question.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as openpgp from 'openpgp';
import { displaySafe, displaySafeJson } from '../../protocol/display.js';
import { createAudit } from '../../server/audit.js';
import { keyWithUserIds } from '../helpers/keycraft.js';
import { TEST_NOW } from '../helpers/keys.js';
import { spa, useKnockRig } from '../unit/client-fixtures.js';
import { Pty, shellQuote, tmuxAvailable } from '../helpers/pty.js';
import { CLI, runKeys, ScriptedPrompter, spawnKeys, withTmp } from '../unit/keyring-helpers.js';

const FAKE_FPR = 'AAAABBBBCCCCDDDDEEEEFFFF0000111122223333';
/** Cursor up, erase the line, then a fingerprint line of another key. */
const CURSOR_UID = `Mallory\x1b[A\x1b[2K  fingerprint  ${FAKE_FPR} <mallory@example.test>`;
const BIDI_UID = 'Eve \u202eexe.ssapyb <eve@example.test>';
/** Anything that can act on a terminal or a log viewer, raw. */
const RAW_UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069]/u;

describe('terminal escape sequences in user ids, usernames and commands', () => {
  let key: openpgp.PrivateKey;
  let fpr: string;
  before(async () => {
    key = await keyWithUserIds([CURSOR_UID, BIDI_UID]);
    fpr = key.getFingerprint().toUpperCase();
  });

  test('displaySafe escapes controls, DEL, C1, bidi and zero-width characters and the backslash, nothing else', () => {
    assert.equal(displaySafe('\x1b[2K'), '\\x1b[2K');
    assert.equal(displaySafe('a\x7fb\x9bc'), 'a\\x7fb\\x9bc');
    assert.equal(displaySafe('\u202eabc\u2066\u200b'), '\\u202eabc\\u2066\\u200b');
    assert.equal(displaySafe('C:\\x1b'), 'C:\\\\x1b', 'a literal backslash cannot pass for an escape');
    assert.equal(displaySafe('Jörg Übel <jörg@example.test> 日本'), 'Jörg Übel <jörg@example.test> 日本');
    assert.equal(displaySafe('tab\there\nnewline'), 'tab\\x09here\\x0anewline');
    assert.equal(JSON.parse(displaySafeJson({ u: '\u202e\x9b' })).u, '\u202e\x9b', 'same JSON value');
    assert.doesNotMatch(displaySafeJson({ u: '\u202e\x9b\x7f' }), RAW_UNSAFE);
  });

  test('spa-keys add prints the user ids escaped, and the fingerprint is the line right above the question', async () => {
    await withTmp(async (dir) => {
      const state = join(dir, 'state');
      assert.equal((await runKeys(['init', '--state-dir', state])).code, 0);
      const file = join(dir, 'mallory.asc');
      await writeFile(file, key.toPublic().armor());
      const p = new ScriptedPrompter([true]);
      const r = await runKeys(
        ['add', '--state-dir', state, '--key', file, '--user', 'mallory', '--open', 'tcp/22'],
        { prompter: p, now: TEST_NOW },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(p.asked, [
        'Does this fingerprint match the one the user gave you (check it out of band)?',
      ]);
      assert.doesNotMatch(r.stderr, RAW_UNSAFE);
      assert.ok(r.stderr.includes(displaySafe(CURSOR_UID)), r.stderr);
      assert.ok(r.stderr.includes('\\u202eexe.ssapyb'), r.stderr);
      // everything printed before the question: its last line is the real fingerprint
      assert.ok(r.stderr.endsWith(`  fingerprint  ${fpr}\n`), r.stderr);
      assert.equal(r.stderr.match(/^ {2}fingerprint {2}/gm)?.length, 1);

      const show = await runKeys(['show', '--state-dir', state, 'mallory']);
      assert.equal(show.code, 0, show.stderr);
      assert.doesNotMatch(show.stdout, RAW_UNSAFE);
      assert.ok(show.stdout.includes(displaySafe(CURSOR_UID)));
      const json = await runKeys(['show', '--state-dir', state, 'mallory', '--json']);
      assert.doesNotMatch(json.stdout, RAW_UNSAFE, 'JSON output escapes them as \\u sequences');
    });
  });

  test(
    'on a real terminal the line right above the question is the real fingerprint, and no other fingerprint line is drawn',
    {
      skip: tmuxAvailable() ? false : 'tmux is not installed',
    },
    async () => {
      await withTmp(async (dir) => {
        const state = join(dir, 'state');
        assert.equal((await spawnKeys(['init', '--state-dir', state])).code, 0);
        const file = join(dir, 'mallory.asc');
        await writeFile(file, key.toPublic().armor());
        const pty = new Pty();
        try {
          await pty.start(
            [
              process.execPath,
              CLI,
              'add',
              '--state-dir',
              state,
              '--key',
              file,
              '--user',
              'mallory',
              '--open',
              'tcp/22',
            ]
              .map(shellQuote)
              .join(' '),
          );
          const screen = await pty.waitFor(/Does this fingerprint match/);
          const lines = screen.split('\n');
          const q = lines.findIndex((l) => l.includes('Does this fingerprint match'));
          assert.equal(lines[q - 1]?.trimEnd(), `  fingerprint  ${fpr}`, screen);
          assert.equal(lines.filter((l) => /^\s*fingerprint\s/.test(l)).length, 1, screen);
          assert.ok(screen.includes('\\x1b[A\\x1b[2K'), screen);
          await pty.type('n');
          await pty.waitFor(/EXIT:5/);
        } finally {
          await pty.stop();
        }
      });
    },
  );

  test('the real spa-keys binary with --yes prints no raw escape either', async () => {
    await withTmp(async (dir) => {
      const state = join(dir, 'state');
      assert.equal((await spawnKeys(['init', '--state-dir', state])).code, 0);
      const r = await spawnKeys(
        ['add', '--state-dir', state, '--key', '-', '--user', 'mallory', '--open', 'tcp/22', '--yes'],
        { input: key.toPublic().armor() },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr + r.stdout, RAW_UNSAFE);
      assert.ok(r.stderr.trimEnd().endsWith(`  fingerprint  ${fpr}`), r.stderr);
      const list = await spawnKeys(['list', '--state-dir', state]);
      assert.doesNotMatch(list.stdout + list.stderr, RAW_UNSAFE);
    });
  });

  test('spa-keys list --client escapes the user id of an imported key', async () => {
    await withTmp(async (home) => {
      const imp = await runKeys(['import', '--home', home, '--user', 'mallory', '-'], {
        stdin: key.armor(),
        now: TEST_NOW,
      });
      assert.equal(imp.code, 0, imp.stderr);
      const list = await runKeys(['list', '--home', home]);
      assert.equal(list.code, 0, list.stderr);
      assert.doesNotMatch(list.stdout, RAW_UNSAFE);
      assert.ok(list.stdout.includes(displaySafe(CURSOR_UID)), list.stdout);
    });
  });

  describe('the audit log', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'spa-audit-esc-'));
    });
    after(async () => rm(dir, { recursive: true, force: true }));

    test('escapes usernames, commands and command output from a packet (DEL, C1, bidi as visible text)', async () => {
      const file = join(dir, 'audit.jsonl');
      const audit = createAudit({ file });
      const command = 'backup \u202eemoh\x9b2K';
      const output = 'done\x1b]0;pwned\x07\x7f';
      audit.log('command', { user: 'mal\u2066lory', command, output, detail: `ran ${command}` });
      const end = Date.now() + 3000;
      let text = '';
      while (!text.includes('"command"') && Date.now() < end) {
        await sleep(20);
        text = await readFile(file, 'utf8').catch(() => '');
      }
      audit.flush();
      assert.doesNotMatch(text, RAW_UNSAFE);
      const line = JSON.parse(text.trim().split('\n').at(-1) ?? '{}') as Record<string, string>;
      assert.equal(line.command, displaySafe(command));
      assert.equal(line.output, displaySafe(output));
      assert.equal(line.user, 'mal\\u2066lory');
    });
  });

  describe('spa -v', () => {
    const rig = useKnockRig();
    test('prints the command of the knock escaped', async () => {
      const cmd = 'backup \u202eemoh\u009b2K';
      const r = await spa([
        '--home',
        rig.H.home,
        '-v',
        '--server-cmd',
        cmd,
        '-p',
        String(rig.L.port),
        '127.0.0.1',
      ]);
      assert.equal(r.code, 0, r.err);
      await rig.L.next();
      assert.doesNotMatch(r.err, RAW_UNSAFE);
      assert.ok(r.err.includes('backup \\u202eemoh\\x9b2K'), r.err);
    });
  });
});
