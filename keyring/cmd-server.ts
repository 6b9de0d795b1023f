/**
 * The server-side `spa-keys` commands, on the state dir's allowlist (or the fleet's, with
 * --cluster: cmd-cluster.ts): init, list, show, disable/enable, remove, export-server. `add` is
 * cmd-add.ts, `import-fwknop` cmd-import-fwknop.ts.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { displaySafeJson } from '../protocol/display.js';
import { ConfigError } from '../protocol/errors.js';
import { listClient } from './cmd-client.js';
import { clustered } from './cmd-cluster.js';
import { fileExists, type GlobalOpts, type SpaKeysIo } from './cmd-io.js';
import { allowlistTable, redactRecord, showRecord, sortRecords } from './format.js';
import type { KeyType } from './generate.js';

export async function initAction(
  io: SpaKeysIo,
  opts: { type: KeyType; passphraseFile?: string },
  cmd: Command,
): Promise<void> {
  const lib = await import('./allowlist.js');
  const stateDir = lib.resolveStateDir(cmd.optsWithGlobals<GlobalOpts>().stateDir, io.env);
  const { readPassphraseFile } = await import('./file-safety.js');
  const passphrase = opts.passphraseFile ? await readPassphraseFile(opts.passphraseFile) : undefined;
  const r = await lib.initServer(stateDir, { type: opts.type, passphrase });
  io.stdout(`fingerprint: ${r.fingerprint}\npublic key: ${r.publicKeyPath}\n`);
  io.stderr(`spa-keys: give ${r.publicKeyPath} to your users (spa-keys import server.asc)\n`);
}

/** `list`: the server allowlist, or the client keystore (see `list --help` for which). */
export async function listAction(
  io: SpaKeysIo,
  opts: { json?: boolean; client?: boolean },
  cmd: Command,
): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const lib = await import('./allowlist.js');
  const client =
    opts.client === true ||
    g.home !== undefined ||
    (g.stateDir === undefined &&
      !io.env.SPA_STATE_DIR &&
      !(await fileExists(join(lib.DEFAULT_STATE_DIR, lib.ALLOWLIST_FILE))));
  if (client) {
    await listClient(io, g, opts.json === true);
    return;
  }
  const stateDir = lib.resolveStateDir(g.stateDir, io.env);
  const file = await clustered(io, cmd, false, () => lib.readAllowlistFile(stateDir));
  const recs = sortRecords(Object.values(file.keys));
  if (opts.json) {
    io.stdout(`${displaySafeJson(recs.map(redactRecord), 2)}\n`);
    return;
  }
  if (recs.length === 0) {
    io.stderr(`spa-keys: no keys enrolled in ${lib.allowlistPath(stateDir)}\n`);
    return;
  }
  io.stdout(`${allowlistTable(recs, io.now())}\n`);
}

export async function showAction(
  io: SpaKeysIo,
  query: string,
  opts: { json?: boolean },
  cmd: Command,
): Promise<void> {
  const lib = await import('./allowlist.js');
  const { notFound } = await import('./lookup.js');
  const stateDir = lib.resolveStateDir(cmd.optsWithGlobals<GlobalOpts>().stateDir, io.env);
  const file = await clustered(io, cmd, false, () => lib.readAllowlistFile(stateDir));
  const recs = sortRecords(lib.findRecords(file, query));
  if (recs.length === 0) {
    throw notFound(
      query,
      'enrolled key',
      Object.values(file.keys).map(lib.recordCandidate),
      'no keys are enrolled yet',
    );
  }
  if (opts.json) io.stdout(`${displaySafeJson(recs.map(redactRecord), 2)}\n`);
  else io.stdout(recs.map((r) => showRecord(r, io.now())).join('\n'));
}

/** `disable` / `enable`. */
export async function setEnabledAction(
  io: SpaKeysIo,
  query: string,
  enabled: boolean,
  cmd: Command,
): Promise<void> {
  const lib = await import('./allowlist.js');
  const stateDir = lib.resolveStateDir(cmd.optsWithGlobals<GlobalOpts>().stateDir, io.env);
  const changed = await clustered(io, cmd, true, () => lib.setEnabled(stateDir, query, enabled));
  for (const r of changed) io.stdout(`${enabled ? 'enabled' : 'disabled'} ${r.username} ${r.fingerprint}\n`);
}

export async function removeAction(
  io: SpaKeysIo,
  query: string,
  opts: { yes?: boolean },
  cmd: Command,
): Promise<void> {
  const lib = await import('./allowlist.js');
  const stateDir = lib.resolveStateDir(cmd.optsWithGlobals<GlobalOpts>().stateDir, io.env);
  const gone = await clustered(io, cmd, true, async () => {
    const file = await lib.readAllowlistFile(stateDir);
    const r = lib.findOneRecord(file, query);
    if (!opts.yes) {
      if (!io.isTTY) {
        throw new ConfigError(
          'NOT_CONFIRMED',
          `not removing ${r.username} ${r.fingerprint} without confirmation`,
          {
            hint: 'run it on a terminal to be asked, or pass --yes',
          },
        );
      }
      const ok = await (
        await io.prompter()
      ).confirm({
        message: `Remove ${r.username}'s key ${r.fingerprint}?`,
        default: false,
      });
      if (!ok) throw new ConfigError('NOT_CONFIRMED', 'not confirmed; nothing was removed');
    }
    return lib.removeRecord(stateDir, r.fingerprint);
  });
  io.stdout(`removed ${gone.username} ${gone.fingerprint}\n`);
}

export async function exportServerAction(io: SpaKeysIo, cmd: Command): Promise<void> {
  const lib = await import('./allowlist.js');
  const stateDir = lib.resolveStateDir(cmd.optsWithGlobals<GlobalOpts>().stateDir, io.env);
  const path = lib.serverPublicKeyPath(stateDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ConfigError('NOT_FOUND', `no server public key at ${path}`, {
        hint: `create the server key with: spa-keys init --state-dir ${stateDir}`,
      });
    }
    throw e;
  }
  io.stdout(text.endsWith('\n') ? text : `${text}\n`);
}
