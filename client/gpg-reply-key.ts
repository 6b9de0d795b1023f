/**
 * `--retries` with `--gpg-home-dir`: the signed reply (SPEC.md §12) is verified with openpgp.js,
 * as in every other mode, against the same server key gpg encrypts the knocks to, exported from
 * the gpg home (`gpg --export FPR`) or read from the `--gpg-recv FILE`. Only that key is taken:
 * the export must hold exactly one key with the recipient's primary fingerprint, so a reply
 * signed by another key in the gpg home never verifies. Loaded only when a reply is awaited.
 */
import type * as openpgp from 'openpgp';
import { pgp } from '../keyring/inspect.js';
import { ConfigError } from '../protocol/errors.js';
import type { GpgRecipient } from './gpg-keys.js';
import { type GpgOptions, runGpg } from './gpg-run.js';

export async function gpgReplyKey(opts: GpgOptions, recipient: GpgRecipient): Promise<openpgp.PublicKey> {
  const fpr = recipient.fingerprint;
  let bytes: Uint8Array;
  if (recipient.args[0] === '--recipient-file' && recipient.args[1] !== undefined) {
    const { KEY_FILE_RULES, readCheckedFile } = await import('../keyring/file-safety.js');
    const data = await readCheckedFile(recipient.args[1], KEY_FILE_RULES);
    if (data === null) throw new ConfigError('KEY_NOT_FOUND', `cannot read key file ${recipient.args[1]}`);
    bytes = new Uint8Array(data.data);
  } else {
    const r = await runGpg(opts, ['--export', '--', fpr]);
    if (r.code !== 0 || r.stdout.length === 0) {
      throw new ConfigError('KEY_NOT_FOUND', `gpg could not export the server key ${fpr}`);
    }
    bytes = new Uint8Array(r.stdout);
  }
  const pg = await pgp();
  const text = Buffer.from(bytes).toString('latin1');
  let keys: openpgp.Key[];
  try {
    keys = text.includes('-----BEGIN PGP')
      ? await pg.readKeys({ armoredKeys: text })
      : await pg.readKeys({ binaryKeys: bytes });
  } catch (cause) {
    throw new ConfigError('KEY_INVALID', `server key ${fpr}: openpgp.js cannot read it to verify the reply`, {
      cause,
    });
  }
  const [key] = keys;
  if (keys.length !== 1 || !key || key.getFingerprint().toUpperCase() !== fpr) {
    throw new ConfigError('KEY_INVALID', `server key ${fpr}: the export holds another key`);
  }
  return key.toPublic();
}
