/**
 * All interactive prompts of spa-keys go through this small interface, so the enrollment flow is
 * tested in-process with scripted answers and, end to end, through a real pseudo-terminal.
 * The real implementation uses inquirer (imported on first use: `spa-keys --help` stays fast)
 * and writes prompts to stderr, keeping stdout for data. A `validate` that returns a string makes
 * inquirer show that message and ask again.
 */
import type { Write } from './cli-util.js';

export type Validate = (value: string) => true | string | Promise<true | string>;

export interface Prompter {
  input(q: { message: string; default?: string; validate?: Validate }): Promise<string>;
  confirm(q: { message: string; default?: boolean }): Promise<boolean>;
  /** Reads pasted lines until one matches `end` (e.g. the armor footer). */
  readBlock(q: { message: string; end: RegExp; maxLines?: number }): Promise<string>;
  /** Free text for the person at the terminal (not a question). */
  say(text: string): void;
}

type AnyPrompt = (questions: unknown) => Promise<Record<string, unknown>>;

/** Prompts on the process's terminal with inquirer; output on stderr. */
export async function inquirerPrompter(): Promise<Prompter> {
  const { default: inquirer } = await import('inquirer');
  const prompt = inquirer.createPromptModule({ output: process.stderr }) as unknown as AnyPrompt;
  const err: Write = (s) => {
    process.stderr.write(s);
  };
  return {
    async input(q) {
      const a = await prompt([
        {
          type: 'input',
          name: 'v',
          message: q.message,
          ...(q.default !== undefined ? { default: q.default } : {}),
          ...(q.validate ? { validate: q.validate } : {}),
        },
      ]);
      return String(a.v ?? '');
    },
    async confirm(q) {
      const a = await prompt([
        { type: 'confirm', name: 'v', message: q.message, default: q.default ?? false },
      ]);
      return a.v === true;
    },
    async readBlock(q) {
      const { createInterface } = await import('node:readline');
      err(`${q.message}\n`);
      const rl = createInterface({ input: process.stdin, terminal: false });
      const lines: string[] = [];
      const max = q.maxLines ?? 5000;
      try {
        for await (const line of rl) {
          lines.push(line);
          if (q.end.test(line) || lines.length >= max) break;
        }
      } finally {
        rl.close();
      }
      return `${lines.join('\n')}\n`;
    },
    say(text) {
      err(text.endsWith('\n') ? text : `${text}\n`);
    },
  };
}
