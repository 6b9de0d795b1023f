/**
 * `spa-keys --cluster URL`: the server commands on the fleet's keyring in Redis instead of the
 * state dir's own (server/cluster/keyring.ts does the signing and storing).
 */
import type { Command } from 'commander';
import { ConfigError } from '../protocol/errors.js';
import type { GlobalOpts, SpaKeysIo } from './cmd-io.js';

/**
 * Runs a server command against the fleet's keyring when `--cluster URL` is given
 * (server/cluster/keyring.ts): Redis' signed keyring becomes this state dir's keyring.json, `fn`
 * runs on it as it would without a cluster, and a change (`write`) is signed with the server key
 * as the next revision and stored back, which every gateway picks up. Without --cluster, `fn` alone.
 */
export async function clustered<R>(
  io: SpaKeysIo,
  cmd: Command,
  write: boolean,
  fn: () => Promise<R>,
): Promise<R> {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  if (g.cluster === undefined) return fn();
  const lib = await import('./allowlist.js');
  const stateDir = lib.resolveStateDir(g.stateDir, io.env);
  const { resolveClusterSettings } = await import('../server/cluster/settings.js');
  const { openLink } = await import('../server/cluster/connection.js');
  const ck = await import('../server/cluster/keyring.js');
  const settings = resolveClusterSettings({ url: g.cluster, timeoutMs: 2000 }, stateDir);
  let serverKey;
  try {
    serverKey = await lib.loadServerKey(stateDir);
  } catch (e) {
    if (e instanceof ConfigError && e.code === 'KEY_PASSPHRASE') {
      throw new ConfigError(
        'KEY_PASSPHRASE',
        `--cluster signs the keyring with ${lib.serverKeyPath(stateDir)}, which is passphrase-protected`,
        {
          hint: 'spa-keys --cluster needs a server key without a passphrase on the admin host',
        },
      );
    }
    throw e;
  }
  const link = await openLink(settings);
  try {
    const r = await ck.withClusterKeyring(link, { stateDir, write, serverKey, now: io.now }, fn);
    if (r.changed) io.stderr(`spa-keys: cluster keyring revision ${r.revision} stored in ${settings.url}\n`);
    return r.result;
  } finally {
    await link.close();
  }
}
