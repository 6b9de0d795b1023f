/**
 * All interactive prompts of spa-keys go through this small interface, so the enrollment flow is
 * tested in-process with scripted answers and, end to end, through a real pseudo-terminal.
 * The real implementation uses inquirer's prompts (@inquirer/prompts, imported on first use so
 * `spa-keys --help` stays fast) and writes them to stderr, keeping stdout for data. A `validate`
 * that returns a string makes inquirer show that message and ask again.
 */
import type { Write } from '../cli/conventions.js';

export type Validate = (value: string) => true | string | Promise<true | string>;

export interface Prompter {
  input(q: { message: string; default?: string; validate?: Validate }): Promise<string>;
  confirm(q: { message: string; default?: boolean }): Promise<boolean>;
  /** Reads pasted lines until one matches `end` (e.g. the armor footer). */
  readBlock(q: { message: string; end: RegExp; maxLines?: number }): Promise<string>;
  /** Free text for the person at the terminal (not a question). */
  say(text: string): void;
}

/** Prompts on the process's terminal with @inquirer/prompts; output on stderr. */
export async function inquirerPrompter(): Promise<Prompter> {
  const prompts = await import('@inquirer/prompts');
  const ctx = { output: process.stderr };
  const err: Write = (s) => {
    process.stderr.write(s);
  };
  return {
    async input(q) {
      return prompts.input(
        {
          message: q.message,
          ...(q.default !== undefined ? { default: q.default } : {}),
          ...(q.validate ? { validate: q.validate } : {}),
        },
        ctx,
      );
    },
    async confirm(q) {
      return prompts.confirm({ message: q.message, default: q.default ?? false }, ctx);
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
