/**
 * The client-side `spa-keys` commands, on the keystore in the home: gen, import, list --client.
 */
import type { Command } from 'commander';
import { displaySafeJson } from '../protocol/display.js';
import { ConfigError } from '../protocol/errors.js';
import { printWarning } from '../cli/conventions.js';
import { type GlobalOpts, readKeyBytes, type SpaKeysIo } from './cmd-io.js';
import { keystoreTable } from './format.js';
import type { KeyType } from './generate.js';

export async function genAction(
  io: SpaKeysIo,
  opts: { user: string; type: KeyType; passphraseFile?: string },
  cmd: Command,
): Promise<void> {
  const ks = await import('./keystore.js');
  const pol = await import('./policy.js');
  const username = pol.parseUsername(opts.user);
  const home = ks.resolveHome(cmd.optsWithGlobals<GlobalOpts>().home, io.env);
  const { readPassphraseFile } = await import('./file-safety.js');
  const passphrase = opts.passphraseFile ? await readPassphraseFile(opts.passphraseFile) : undefined;
  const r = await ks.generateOwnKey(home, { username, type: opts.type, passphrase, now: io.now() });
  io.stderr(
    `spa-keys: made ${opts.type} key ${r.record.fingerprint} for ${username}, stored in ${ks.keystorePath(home)}\n` +
      'spa-keys: send the public key below to your admin (spa-keys add --key FILE)\n',
  );
  if (passphrase === undefined) {
    printWarning(
      `the secret key is stored unencrypted in ${ks.keystorePath(home)} (mode 0600); anyone who can read that file can knock as ${username}`,
      io.stderr,
    );
    io.stderr('spa: hint: to protect it, make it again with --passphrase-file FILE\n');
  }
  io.stdout(r.publicKeyArmored.endsWith('\n') ? r.publicKeyArmored : `${r.publicKeyArmored}\n`);
}

export async function importAction(
  io: SpaKeysIo,
  file: string,
  opts: { user?: string; name?: string },
  cmd: Command,
): Promise<void> {
  const ks = await import('./keystore.js');
  const pol = await import('./policy.js');
  const username = opts.user !== undefined ? pol.parseUsername(opts.user) : undefined;
  if (opts.name !== undefined && !/^[\x21-\x7e]{1,128}$/.test(opts.name)) {
    throw new ConfigError('USAGE', '--name: 1 to 128 printable characters without spaces', {
      field: '--name',
    });
  }
  const home = ks.resolveHome(cmd.optsWithGlobals<GlobalOpts>().home, io.env);
  const input = await readKeyBytes(file, io);
  const r = await ks.importKey(home, input, { username, name: opts.name, now: io.now() });
  if (r.kind === 'own') {
    io.stdout(
      `imported own key ${r.record.fingerprint} for user ${r.record.username}` +
        `${r.info.isEncrypted ? ' (passphrase-protected)' : ''}\n`,
    );
    if (r.usernameDerived) {
      io.stderr(
        `spa-keys: username '${r.record.username}' taken from the user id; use --user to choose another\n`,
      );
    }
  } else {
    io.stdout(`imported server key ${r.record.fingerprint}${r.record.name ? ` as ${r.record.name}` : ''}\n`);
  }
}

/** `list --client` (or `list --home`): own and server keys. */
export async function listClient(io: SpaKeysIo, g: GlobalOpts, json: boolean): Promise<void> {
  const ks = await import('./keystore.js');
  const home = ks.resolveHome(g.home, io.env);
  const store = await ks.openKeystore(home);
  const ownOut = [...store.own.values()].map((r) => ({
    fingerprint: r.fingerprint,
    username: r.username,
    userIds: r.userIds,
    createdAt: r.createdAt,
    publicKey: r.publicKey,
  }));
  const servers = [...store.servers.values()];
  if (json) {
    io.stdout(`${displaySafeJson({ own: ownOut, servers }, 2)}\n`);
    return;
  }
  if (ownOut.length === 0 && servers.length === 0) {
    io.stderr(`spa-keys: no keys in ${store.path}\n`);
    return;
  }
  io.stdout(`${keystoreTable(ownOut, servers)}\n`);
}
