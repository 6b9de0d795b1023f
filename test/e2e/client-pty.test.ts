/**
 * The passphrase prompt on a real terminal: `spa` runs in a private tmux server (its own socket,
 * killed afterwards); the test reads the screen and types like a person. The typed passphrase is
 * never echoed; a wrong one is asked again; under `spa connect`, whose stdin and stdout carry the
 * relayed bytes, the question goes to the terminal (/dev/tty) and the relay still works.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { generateOwnKey } from '../../keyring/keystore.js';
import {
  type Home,
  type Keys,
  keys as loadKeys,
  type Listener,
  makeHome,
  udpListener,
} from '../unit/client-fixtures.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'client', 'cli.js');
const execFileP = promisify(execFile);

function tmuxMissing(): string | false {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'tmux is not installed';
  }
}

/** One tmux session running `command` in a shell that prints the exit status afterwards. */
class Terminal {
  readonly #sock = `spa-client-pty-${process.pid}-${randomBytes(4).toString('hex')}`;

  #tmux(args: string[]): Promise<{ stdout: string }> {
    return execFileP('tmux', ['-L', this.#sock, ...args], { env: { ...process.env, TMUX: '' } });
  }

  async start(command: string): Promise<void> {
    await this.#tmux([
      'new-session',
      '-d',
      '-s',
      't',
      '-x',
      '200',
      '-y',
      '50',
      `${command}; echo "EXIT=$?"; sleep 300`,
    ]);
  }

  async screen(): Promise<string> {
    return (await this.#tmux(['capture-pane', '-p', '-J', '-t', 't'])).stdout;
  }

  /** Waits until the screen matches `re` at least `count` times. */
  async waitFor(re: RegExp, count = 1, timeoutMs = 20_000): Promise<string> {
    const g = new RegExp(re.source, `${re.flags.replace('g', '')}g`);
    const until = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.screen();
      if ((s.match(g) ?? []).length >= count) return s;
      if (Date.now() > until) throw new Error(`screen never showed ${re} x${count}:\n${s}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async type(text: string): Promise<void> {
    await this.#tmux(['send-keys', '-t', 't', '-l', text]);
    await this.#tmux(['send-keys', '-t', 't', 'Enter']);
  }

  async kill(): Promise<void> {
    await this.#tmux(['kill-server']).catch(() => undefined);
  }
}

const PASS = 'tty pass phrase 42';

describe('the passphrase prompt on a terminal', { skip: tmuxMissing() }, () => {
  let K: Keys;
  let H: Home;
  let L: Listener;
  let echo: Server;
  let echoPort: number;
  const sockets = new Set<Socket>();

  before(async () => {
    K = await loadKeys();
    H = await makeHome([], [{ key: K.server }]);
    await generateOwnKey(H.home, { username: 'tess', passphrase: PASS });
    L = await udpListener();
    echo = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    const a = echo.address();
    echoPort = typeof a === 'object' && a ? a.port : 0;
  });
  after(async () => {
    L.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => echo.close(r));
    await H.cleanup();
  });

  test('asks without echo, asks again after a wrong passphrase, then knocks', async () => {
    const t = new Terminal();
    try {
      const before = L.received.length;
      await t.start(`${process.execPath} ${CLI} --home ${H.home} -A tcp/22 -p ${L.port} 127.0.0.1`);
      await t.waitFor(/Passphrase for key [0-9A-F]{40}:/);
      await t.type('not the passphrase');
      await t.waitFor(/Wrong passphrase\. Passphrase for key/);
      await t.type(PASS);
      const screen = await t.waitFor(/EXIT=\d+/);
      assert.match(screen, /EXIT=0/);
      assert.doesNotMatch(screen, /tty pass phrase|not the passphrase/, 'nothing typed is echoed');
      await L.settled();
      assert.equal(L.received.length, before + 1);
    } finally {
      await t.kill();
    }
  });

  test('under spa connect (stdin and stdout are pipes) the prompt uses the terminal and the relay works', async () => {
    const t = new Terminal();
    try {
      const outFile = join(H.root, 'relayed.txt');
      await t.start(
        `echo relayed-line | ${process.execPath} ${CLI} connect --home ${H.home} -p ${L.port} 127.0.0.1 ${echoPort} > ${outFile}`,
      );
      await t.waitFor(/Passphrase for key [0-9A-F]{40}:/);
      await t.type(PASS);
      const screen = await t.waitFor(/EXIT=\d+/);
      assert.match(screen, /EXIT=0/, 'the exit status of spa connect itself');
      assert.equal(await readFile(outFile, 'utf8'), 'relayed-line\n');
      assert.doesNotMatch(screen, /tty pass phrase/);
    } finally {
      await t.kill();
    }
  });
});
