/**
 * A pseudo-terminal for tests: tmux (a private server on its own socket, killed by `stop()`) runs a
 * command; tests read the rendered screen (what a person sees, escape sequences applied) and type.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

export function tmuxAvailable(): boolean {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export class Pty {
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
export async function answer(pty: Pty, question: RegExp, text: string, occurrence = 0): Promise<void> {
  await pty.waitFor(question, 20_000, occurrence);
  await pty.type(text);
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
