/**
 * Unlocking a passphrase-protected own key: from `--key-passphrase-file FILE` (refused when group
 * or others can read it: keyring/file-safety.ts), else by asking on
 * the terminal (inquirer's password prompt, which echoes nothing). Under `spa connect` stdin and
 * stdout carry the ssh session, so the question goes to /dev/tty, as ssh does for its own
 * prompts. The passphrase is never printed, logged, or put in an error message.
 */
import { openSync } from 'node:fs';
import type * as openpgp from 'openpgp';
import { pgp, pgpConfig } from '../keyring/inspect.js';
import { ConfigError } from '../protocol/errors.js';

/** Asks for a passphrase; resolves to null when nobody can be asked. */
export type AskPassphrase = (message: string) => Promise<string | null>;

export const PROMPT_ATTEMPTS = 3;

/** A terminal prompt: stdin/stderr when both are TTYs, else /dev/tty, else null. */
export const askOnTerminal: AskPassphrase = async (message) => {
  const tty = await import('node:tty');
  let input: NodeJS.ReadableStream & { isTTY?: boolean };
  let output: NodeJS.WritableStream;
  let opened: { input: import('node:tty').ReadStream; output: import('node:tty').WriteStream } | null = null;
  if (process.stdin.isTTY && process.stderr.isTTY) {
    input = process.stdin;
    output = process.stderr;
  } else {
    try {
      const ro = openSync('/dev/tty', 'r');
      const wo = openSync('/dev/tty', 'w');
      opened = { input: new tty.ReadStream(ro), output: new tty.WriteStream(wo) };
      input = opened.input;
      output = opened.output;
    } catch {
      return null;
    }
  }
  try {
    const { password } = await import('@inquirer/prompts');
    return await password({ message, mask: false }, { input, output, clearPromptOnDone: true });
  } finally {
    if (opened) {
      opened.input.destroy();
      opened.output.destroy();
    }
  }
};

/** The key itself if it is not protected; else decrypted with the file's or a typed passphrase. */
export async function unlockKey(
  key: openpgp.PrivateKey,
  opts: { passphraseFile?: string | undefined; ask?: AskPassphrase; label: string },
): Promise<openpgp.PrivateKey> {
  if (key.isDecrypted()) return key;
  const pg = await pgp();
  const tryWith = async (passphrase: string): Promise<openpgp.PrivateKey | null> => {
    try {
      return await pg.decryptKey({ privateKey: key, passphrase, config: await pgpConfig() });
    } catch {
      return null;
    }
  };
  if (opts.passphraseFile !== undefined) {
    const { readPassphraseFile } = await import('../keyring/file-safety.js');
    const unlocked = await tryWith(await readPassphraseFile(opts.passphraseFile));
    if (unlocked) return unlocked;
    throw new ConfigError(
      'KEY_PASSPHRASE',
      `the passphrase in ${opts.passphraseFile} does not unlock key ${opts.label}`,
      {
        hint: 'the file must hold the passphrase alone (one trailing newline is ignored)',
      },
    );
  }
  const ask = opts.ask ?? askOnTerminal;
  for (let i = 0; i < PROMPT_ATTEMPTS; i++) {
    const typed = await ask(`${i > 0 ? 'Wrong passphrase. ' : ''}Passphrase for key ${opts.label}:`);
    if (typed === null) {
      throw new ConfigError(
        'KEY_PASSPHRASE',
        `key ${opts.label} is passphrase-protected and there is no terminal to ask on`,
        {
          hint: 'give it with --key-passphrase-file FILE (mode 0600)',
        },
      );
    }
    const unlocked = typed === '' ? null : await tryWith(typed);
    if (unlocked) return unlocked;
  }
  throw new ConfigError(
    'KEY_PASSPHRASE',
    `wrong passphrase for key ${opts.label} (${PROMPT_ATTEMPTS} attempts)`,
  );
}
