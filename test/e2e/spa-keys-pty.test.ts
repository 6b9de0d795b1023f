/**
 * The real `spa-keys add` on a pseudo-terminal: tmux (a private server on its own socket, killed
 * afterwards) runs the binary; the test reads the screen and types answers like a person,
 * including wrong answers that must be refused and asked again, then checks keyring.json.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadAllowlist } from '../../keyring/allowlist.js';
import { answer, Pty, shellQuote, tmuxAvailable } from '../helpers/pty.js';
import { CLI, makeKey, spawnKeys, withTmp } from '../unit/keyring-helpers.js';

const skip = tmuxAvailable() ? false : 'tmux is not installed';

describe('spa-keys add on a terminal', { skip }, () => {
  it('asks for each missing value, refuses a bad username and a bad port and asks again, then stores the record', async () => {
    await withTmp(async (dir) => {
      const s = join(dir, 'state');
      assert.equal((await spawnKeys(['init', '--state-dir', s])).code, 0);
      const k = await makeKey({ name: 'Alice', email: 'alice@example.test' });
      const keyPath = join(dir, 'alice.asc');
      await writeFile(keyPath, k.publicKey);
      // what `fwknop --key-gen` prints, saved as is
      const hmacPath = join(dir, 'fwknop-keys');
      const hmac = Buffer.alloc(64, 7).toString('base64');
      await writeFile(
        hmacPath,
        `KEY_BASE64: ${Buffer.alloc(32, 1).toString('base64')}\nHMAC_KEY_BASE64: ${hmac}\n`,
        {
          mode: 0o600,
        },
      );
      const pty = new Pty();
      try {
        await pty.start(
          `${shellQuote(process.execPath)} ${shellQuote(CLI)} add --state-dir ${shellQuote(s)}`,
        );
        await answer(pty, /User's public key/, join(dir, 'nope.asc'));
        let scr = await pty.waitFor(/cannot read/);
        await pty.clearLine();
        await pty.type(keyPath);
        scr = await pty.waitFor(/Does this fingerprint match/);
        assert.match(scr, new RegExp(`fingerprint  ${k.fingerprint}`));
        assert.match(scr, /user ids {5}Alice <alice@example\.test>/);
        assert.match(scr, /algorithm {4}ed25519 \(subkeys: cv25519\)/);
        await pty.type('y');
        await answer(pty, /Username for this key/, 'Bad User!');
        await pty.waitFor(/not a valid user name/);
        await pty.clearLine();
        await pty.type('alice');
        await answer(pty, /Source addresses allowed to knock/, '198.51.100.0/24');
        await answer(pty, /Ports to open/, 'tcp/99999');
        await pty.waitFor(/port must be 1\.\.65535/);
        await pty.clearLine();
        await pty.type('tcp/22,udp/53');
        await answer(pty, /Must the knock name the packet's own source address/, 'n');
        await answer(pty, /Default firewall timeout/, '45');
        await answer(pty, /Longest timeout this key may ask for/, '');
        await answer(pty, /Allow this key to request a server command/, '');
        await answer(pty, /Also accept knocks from the unmodified fwknop client/, 'y');
        await answer(pty, /fwknop HMAC key file/, hmacPath);
        await answer(pty, /Enrollment expires on/, '2099-12-31');
        await answer(pty, /Internal hosts this key may be forwarded to/, 'local:0');
        await pty.waitFor(/port must be 1\.\.65535/);
        await pty.clearLine();
        await pty.type('203.0.113.10:22,[2001:db8:1::10]:22');
        await answer(pty, /signed "door is open" reply/, 'y');
        scr = await pty.waitFor(/EXIT:\d+/);
        assert.match(scr, /EXIT:0/, scr);
        assert.match(scr, new RegExp(`enrolled alice ${k.fingerprint}`));
        assert.equal(pty.count(scr, /Username for this key/) >= 1, true);
      } finally {
        await pty.stop();
      }
      const rec = (await loadAllowlist(s)).records.get(k.fingerprint);
      assert.ok(rec);
      assert.equal(rec.username, 'alice');
      assert.deepEqual(rec.sources, ['198.51.100.0/24']);
      assert.deepEqual(rec.openPorts, ['tcp/22', 'udp/53']);
      assert.equal(rec.requireSourceAddress, false);
      assert.equal(rec.defaultTimeout, 45);
      assert.equal(rec.maxTimeout, 300);
      assert.equal(rec.command, null);
      assert.deepEqual(rec.fwknop, { hmacKey: hmac, requireUsername: null });
      assert.equal(rec.expiresAt, '2099-12-31T00:00:00.000Z');
      assert.deepEqual(rec.forward, ['203.0.113.10:22', '[2001:db8:1::10]:22']);
      assert.equal(rec.reply, true);
    });
  });

  it('takes a key pasted into the terminal and a command policy, and shows the broad-regex warning', async () => {
    await withTmp(async (dir) => {
      const s = join(dir, 'state');
      assert.equal((await spawnKeys(['init', '--state-dir', s])).code, 0);
      const k = await makeKey({ name: 'Backup Host', email: 'backup@example.test' });
      const pty = new Pty();
      try {
        await pty.start(
          `${shellQuote(process.execPath)} ${shellQuote(CLI)} add --state-dir ${shellQuote(s)} --open tcp/22`,
        );
        await answer(pty, /User's public key/, '-');
        await pty.waitFor(/Paste the armored public key/);
        await pty.paste(k.publicKey);
        await answer(pty, /Does this fingerprint match/, 'y');
        await answer(pty, /Username for this key/, ''); // default from the e-mail: backup
        await answer(pty, /Source addresses allowed to knock/, '');
        await answer(pty, /Must the knock name the packet's own source address/, '');
        await answer(pty, /Default firewall timeout/, '');
        await answer(pty, /Longest timeout this key may ask for/, '');
        await answer(pty, /Allow this key to request a server command/, 'y');
        await answer(pty, /Command regex/, 'backup-run .*');
        await pty.waitFor(/spa: warning: --cmd-regex contains \.\*/);
        await answer(pty, /Run the command as unix user/, 'nobody');
        await answer(pty, /Command time limit/, '');
        await answer(pty, /Also accept knocks from the unmodified fwknop client/, '');
        await answer(pty, /Enrollment expires on/, '');
        await answer(pty, /Internal hosts this key may be forwarded to/, '');
        await answer(pty, /signed "door is open" reply/, '');
        const scr = await pty.waitFor(/EXIT:\d+/);
        assert.match(scr, /EXIT:0/, scr);
      } finally {
        await pty.stop();
      }
      const rec = (await loadAllowlist(s)).records.get(k.fingerprint);
      assert.ok(rec);
      assert.equal(rec.username, 'backup');
      assert.equal(rec.sources, 'any');
      assert.equal(rec.requireSourceAddress, true);
      assert.deepEqual(rec.command, {
        regex: 'backup-run .*',
        runAs: 'nobody',
        timeoutSeconds: 60,
        openPorts: [],
      });
      assert.equal(rec.fwknop, undefined, 'fwknop knocks are off unless asked for');
    });
  });

  it('remove asks on a terminal and keeps the key when the answer is no', async () => {
    await withTmp(async (dir) => {
      const s = join(dir, 'state');
      assert.equal((await spawnKeys(['init', '--state-dir', s])).code, 0);
      const k = await makeKey({ name: 'Zoe' });
      await writeFile(join(dir, 'z.asc'), k.publicKey);
      const add = await spawnKeys([
        'add',
        '--state-dir',
        s,
        '--user',
        'zoe',
        '--key',
        join(dir, 'z.asc'),
        '--open',
        'tcp/22',
      ]);
      assert.equal(add.code, 0, add.stderr);
      const pty = new Pty();
      try {
        await pty.start(
          `${shellQuote(process.execPath)} ${shellQuote(CLI)} remove zoe --state-dir ${shellQuote(s)}`,
        );
        await answer(pty, /Remove zoe's key/, 'n');
        const scr = await pty.waitFor(/EXIT:\d+/);
        assert.match(scr, /EXIT:5/);
        assert.match(scr, /spa: error: not confirmed; nothing was removed/);
      } finally {
        await pty.stop();
      }
      assert.equal((await loadAllowlist(s)).records.size, 1);
    });
  });
});
