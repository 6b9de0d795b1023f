/**
 * The real `spa-keys add` on a pseudo-terminal: tmux (a private server on its own socket, killed
 * afterwards) runs the binary; the test reads the screen and types answers like a person,
 * including wrong answers that must be refused and asked again, then checks keyring.json.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadAllowlist } from '../../keyring/allowlist.js';
import { CLI, makeKey, spawnKeys, withTmp } from '../unit/keyring-helpers.js';

const run = promisify(execFile);

function tmuxAvailable(): boolean {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skip = tmuxAvailable() ? false : 'tmux is not installed';

class Pty {
  private readonly socket = `spa-keys-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  private started = false;

  private tmux(args: string[]) {
    return run('tmux', ['-L', this.socket, ...args], { env: { ...process.env, TMUX: '' } });
  }

  async start(command: string): Promise<void> {
    // the shell keeps the pane open after the command so its exit status can be read
    await this.tmux([
      'new-session',
      '-d',
      '-s',
      'main',
      '-x',
      '200',
      '-y',
      '80',
      `${command}; echo "EXIT:$?"; sleep 600`,
    ]);
    this.started = true;
  }

  async screen(): Promise<string> {
    return (await this.tmux(['capture-pane', '-p', '-J', '-t', 'main', '-S', '-2000'])).stdout;
  }

  /** Waits until the screen matches `re` (after `after` occurrences of it, for repeated prompts). */
  async waitFor(re: RegExp, timeoutMs = 20_000, after = 0): Promise<string> {
    const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
    const until = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < until) {
      last = await this.screen();
      if ((last.match(g)?.length ?? 0) > after) return last;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${re}; screen:\n${last}`);
  }

  count(screen: string, re: RegExp): number {
    return screen.match(new RegExp(re.source, `${re.flags.replace('g', '')}g`))?.length ?? 0;
  }

  async type(text: string): Promise<void> {
    if (text !== '') await this.tmux(['send-keys', '-t', 'main', '-l', text]);
    await this.tmux(['send-keys', '-t', 'main', 'Enter']);
  }

  async clearLine(): Promise<void> {
    await this.tmux(['send-keys', '-t', 'main', 'C-u']);
  }

  /** Pastes like a terminal does (bracketed as a real paste buffer, newlines as Enter). */
  async paste(text: string): Promise<void> {
    const name = `b${randomBytes(3).toString('hex')}`;
    const p = this.tmux(['load-buffer', '-b', name, '-']);
    p.child.stdin?.end(text);
    await p;
    await this.tmux(['paste-buffer', '-d', '-b', name, '-t', 'main']);
  }

  async stop(): Promise<void> {
    if (this.started) await this.tmux(['kill-server']).catch(() => {});
  }
}

/** Answers a prompt: waits for its question to appear for the n-th time, then types. */
async function answer(pty: Pty, question: RegExp, text: string, occurrence = 0): Promise<void> {
  await pty.waitFor(question, 20_000, occurrence);
  await pty.type(text);
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

describe('spa-keys add on a terminal', { skip }, () => {
  it('asks for each missing value, refuses a bad username and a bad port and asks again, then stores the record', async () => {
    await withTmp(async (dir) => {
      const s = join(dir, 'state');
      assert.equal((await spawnKeys(['init', '--state-dir', s])).code, 0);
      const k = await makeKey({ name: 'Alice', email: 'alice@example.test' });
      const keyPath = join(dir, 'alice.asc');
      await writeFile(keyPath, k.publicKey);
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
        await answer(pty, /Enrollment expires on/, '2099-12-31');
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
      assert.equal(rec.expiresAt, '2099-12-31T00:00:00.000Z');
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
        await answer(pty, /Enrollment expires on/, '');
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
