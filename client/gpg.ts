/**
 * `--gpg-home-dir DIR`: sign and encrypt with the real `gpg` from that home instead of openpgp.js,
 * so keys that live in gpg-agent or on a smartcard work. The message gpg makes has the shape
 * SPEC.md §3 asks for (PKESK, SEIPD{OPS, Literal, Signature}) whatever gpg.conf says: binary
 * (`--no-armor`), the recipient key id kept (`--no-throw-keyids`), the payload bytes untouched
 * (`--no-textmode`), uncompressed (`--compress-algo none -z 0`: compression only adds bytes to
 * an 80-byte payload), and gpg-shape.ts checks the result before it is sent.
 *
 * The keys are found by gpg in its home (gpg-keys.ts: named as for the keystore, short key ids
 * refused, the server key never guessed). gpg is run without a shell, with a time limit, its
 * output bounded (gpg-run.ts). `--trust-model always` because the user names the exact key;
 * `--no-encrypt-to` so a gpg.conf `encrypt-to` does not add recipients to the knock.
 */
import { ConfigError } from '../protocol/errors.js';
import type { GpgRecipient } from './gpg-keys.js';
import { checkGpgKnock } from './gpg-shape.js';
import { GPG_SEAL_TIMEOUT_MS, type GpgOptions, lastGpgLine, runGpg } from './gpg-run.js';

/** Signs with `signer` and encrypts to `recipient`: the binary knock. */
export async function gpgSeal(
  opts: GpgOptions,
  payload: Uint8Array,
  recipient: GpgRecipient,
  signer: string,
): Promise<Uint8Array> {
  // forced whatever gpg.conf says: binary, key ids kept, no text canonicalisation, no compression
  const args = [
    '--yes',
    '--trust-model',
    'always',
    '--no-encrypt-to',
    '--no-armor',
    '--no-throw-keyids',
    '--no-textmode',
    '--compress-algo',
    'none',
    '-z',
    '0',
  ];
  if (opts.passphraseFile !== undefined) {
    args.push('--pinentry-mode', 'loopback', '--passphrase-file', opts.passphraseFile);
  }
  args.push('--local-user', signer, ...recipient.args, '--sign', '--encrypt', '--output', '-');
  const r = await runGpg(opts, args, { input: payload, timeoutMs: GPG_SEAL_TIMEOUT_MS });
  if (r.code === 0 && r.stdout.length > 0) {
    const packet = new Uint8Array(r.stdout);
    checkGpgKnock(packet, recipient.keyIds);
    return packet;
  }
  const why = lastGpgLine(r.stderr);
  if (/bad passphrase/i.test(r.stderr)) {
    throw new ConfigError('KEY_PASSPHRASE', `gpg: wrong passphrase for ${signer}`, {
      hint: opts.passphraseFile ? `check ${opts.passphraseFile}` : undefined,
    });
  }
  if (/pinentry|inappropriate ioctl|operation cancelled|no passphrase given/i.test(r.stderr)) {
    throw new ConfigError('KEY_PASSPHRASE', `gpg could not get the passphrase for ${signer}: ${why}`, {
      hint: 'run export GPG_TTY=$(tty) first, or give --key-passphrase-file FILE',
    });
  }
  if (/no secret key|secret key not available/i.test(r.stderr)) {
    throw new ConfigError('KEY_NOT_FOUND', `gpg: no secret key for ${signer}: ${why}`, {
      hint: 'is the card inserted, or the key imported into this gpg home?',
    });
  }
  throw new ConfigError('IO', `gpg failed to sign and encrypt: ${why}`);
}
