/**
 * Output conventions shared by the three binaries (`spa`, `spad`, `spa-keys`), stated once:
 * - an error is exactly one line on stderr, `spa: error: <message>`, lowercase start, no trailing
 *   period; what the user can do about it follows as `spa: hint: <hint>` lines;
 * - warnings are `spa: warning: <message>` lines;
 * - data goes to stdout, everything else to stderr;
 * - exit codes are the `EXIT` table below, chosen from the error's stable code, never its text.
 *
 * `runCli` makes a commander program testable in-process: `exitOverride()` turns commander's own
 * exits into exceptions and `configureOutput()` routes its output through the caller's writers, so
 * commander's usage errors print in the same format and exit with `EXIT.USAGE`.
 */
import type { Command } from 'commander';
import { displaySafe } from '../protocol/display.js';
import { type ErrorCode, isSpaError } from '../protocol/errors.js';

export const EXIT = {
  OK: 0,
  /** Runtime or I/O failure. */
  ERROR: 1,
  /** Bad or missing flags, values that do not parse. */
  USAGE: 2,
  /** Key not found, ambiguous, invalid, weak, or a secret key where a public one is expected. */
  KEY: 3,
  /** Keyring or state file corrupt or locked. */
  STATE: 4,
  /** Refused: already exists, not confirmed, no TTY to confirm and no `--yes`; import-fwknop refused a stanza. */
  REFUSED: 5,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const USAGE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'USAGE',
  'CONFIG_INVALID',
  'ACCESS_SPEC',
  'ADDRESS_INVALID',
  'USERNAME_INVALID',
  'COMMAND_INVALID',
  'LIMIT_EXCEEDED',
]);
const KEY_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'KEY_INVALID',
  'KEY_WEAK',
  'KEY_NOT_FOUND',
  'KEY_AMBIGUOUS',
  'KEY_SECRET_REFUSED',
  'KEY_PASSPHRASE',
  'KEY_EXPIRED',
  'KEY_REVOKED',
  'KEY_DISABLED',
]);

/** The exit code for an error code; anything not listed is a runtime error (1). */
export function exitCodeFor(code: ErrorCode): ExitCode {
  if (USAGE_CODES.has(code)) return EXIT.USAGE;
  if (KEY_CODES.has(code)) return EXIT.KEY;
  if (code === 'KEYRING_CORRUPT' || code === 'KEYRING_LOCKED') return EXIT.STATE;
  if (code === 'EXISTS' || code === 'NOT_CONFIRMED' || code === 'IMPORT_INCOMPLETE') return EXIT.REFUSED;
  return EXIT.ERROR;
}

export type Write = (text: string) => void;

const defaultStderr: Write = (s) => {
  process.stderr.write(s);
};
const defaultStdout: Write = (s) => {
  process.stdout.write(s);
};

/** One line, lowercase start (unless it starts with an acronym), no trailing period. */
export function formatMessage(message: string): string {
  let m = message.trim().replace(/\s*\r?\n\s*/g, '; ');
  if (/^[A-Z][a-z]/.test(m)) m = m.charAt(0).toLowerCase() + m.slice(1);
  m = m.replace(/[.\s]+$/, '');
  // messages may quote user ids, usernames or commands: never let them act on the terminal
  return m === '' ? 'unknown error' : displaySafe(m, { backslash: false });
}

function hintLines(hint: string | undefined): string[] {
  if (!hint) return [];
  return hint
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '')
    .map((l) => displaySafe(l, { backslash: false }));
}

/** Writes `spa: error: ...` and any hint lines. */
export function printError(err: unknown, write: Write = defaultStderr): void {
  let message: string;
  let hint: string | undefined;
  if (isSpaError(err)) {
    message = err.message;
    hint = err.hint;
  } else if (err instanceof Error && err.name === 'ExitPromptError') {
    message = 'cancelled; nothing was changed';
  } else if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    message = code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  } else {
    message = String(err);
  }
  let out = `spa: error: ${formatMessage(message)}\n`;
  for (const line of hintLines(hint)) out += `spa: hint: ${line}\n`;
  write(out);
}

export function printWarning(message: string, write: Write = defaultStderr): void {
  write(`spa: warning: ${formatMessage(message)}\n`);
}

/** The exit code `runCli` uses for an error thrown by an action. */
export function exitCodeForError(err: unknown): ExitCode {
  if (isSpaError(err)) return exitCodeFor(err.code);
  if (err instanceof Error && err.name === 'ExitPromptError') return EXIT.REFUSED;
  return EXIT.ERROR;
}

interface CommanderLikeError {
  code: string;
  exitCode: number;
  message: string;
}
function isCommanderError(e: unknown): e is CommanderLikeError {
  return (
    e instanceof Error &&
    typeof (e as Partial<CommanderLikeError>).code === 'string' &&
    ((e as Partial<CommanderLikeError>).code ?? '').startsWith('commander.') &&
    typeof (e as Partial<CommanderLikeError>).exitCode === 'number'
  );
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function wire(cmd: Command, out: Write, err: Write): void {
  cmd.exitOverride();
  cmd.configureOutput({
    writeOut: out,
    writeErr: err,
    outputError: (text, write) => {
      const m = text.replace(/^error:\s*/i, '');
      write(`spa: error: ${formatMessage(m)}\nspa: hint: see '${commandPath(cmd)} --help'\n`);
    },
  });
  for (const sub of cmd.commands) wire(sub, out, err);
}

/**
 * Parses `argv` (user arguments only, without `node` and the script) and runs the action. Never
 * calls `process.exit`: returns the exit code (the bin sets `process.exitCode`).
 */
export async function runCli(
  program: Command,
  argv: readonly string[],
  io: { stdout?: Write; stderr?: Write } = {},
): Promise<number> {
  const out = io.stdout ?? defaultStdout;
  const err = io.stderr ?? defaultStderr;
  wire(program, out, err);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT.OK;
  } catch (e) {
    if (isCommanderError(e)) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT.OK;
      // commander already printed the error through outputError (or help, for a missing command)
      return e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    printError(e, err);
    return exitCodeForError(e);
  }
}
