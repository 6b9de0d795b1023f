/**
 * `spa-keys import-fwknop ACCESS_CONF`: plans the import (import-fwknop.ts), enrolls what it can
 * unless --dry-run, and prints one table row per stanza and key with its result and reason.
 */
import type { Command } from 'commander';
import { displaySafe } from '../protocol/display.js';
import { ConfigError } from '../protocol/errors.js';
import { printWarning } from '../cli/conventions.js';
import type { GlobalOpts, SpaKeysIo } from './cmd-io.js';
import { table } from './format.js';

export async function importFwknopAction(
  io: SpaKeysIo,
  file: string,
  opts: { gpgHome?: string; dryRun?: boolean },
  cmd: Command,
): Promise<void> {
  const lib = await import('./allowlist.js');
  const insp = await import('./inspect.js');
  const { readAccessConf } = await import('./fwknop-access-conf.js');
  const { systemGpg } = await import('./fwknop-gpg-home.js');
  const { planImport } = await import('./import-fwknop.js');
  const { minimalKey } = await import('./minimize.js');
  const stateDir = lib.resolveStateDir(cmd.optsWithGlobals<GlobalOpts>().stateDir, io.env);
  const now = io.now();
  const before = await lib.readAllowlistFile(stateDir);
  const conf = await readAccessConf(file);
  if (conf.stanzas.length === 0) {
    throw new ConfigError('CONFIG_INVALID', `${file}: no stanza (a stanza starts with SOURCE)`);
  }
  const plan = await planImport(conf, {
    gpg: systemGpg,
    gpgHome: opts.gpgHome,
    now,
    existing: new Map(Object.entries(before.keys)),
    loadKey: async (armored, what) => {
      const key = await minimalKey(await insp.parseKey(armored), now, what);
      const info = await insp.describeKey(key, now);
      insp.assertPublic(info, what);
      insp.checkUsable(info, 'client');
      const pub = key.isPrivate() ? key.toPublic() : key;
      return { info, armored: pub.armor() };
    },
  });
  const rows = [['STANZA', 'LINE', 'SOURCE', 'KEY', 'USER', 'RESULT', 'REASON']];
  let done = 0;
  for (const r of plan.rows) {
    let outcome = r.outcome;
    if (outcome === 'enrolled') {
      const rec = plan.records.find((p) => p.record.fingerprint === r.key)?.record;
      if (opts.dryRun) outcome = 'would enroll';
      else if (rec) {
        await lib.addRecord(stateDir, rec);
        done++;
      }
    }
    rows.push([
      String(r.stanza),
      String(r.line),
      displaySafe(r.source),
      displaySafe(r.key),
      displaySafe(r.user),
      outcome,
      displaySafe(r.reason || '-'),
    ]);
  }
  io.stdout(`${table(rows)}\n`);
  for (const w of plan.warnings) printWarning(displaySafe(w), io.stderr);
  io.stderr(
    `spa-keys: ${opts.dryRun ? `${plan.records.length} keys would be enrolled (dry run: nothing written)` : `${done} keys enrolled for fwknop knocks`}\n`,
  );
  if (plan.records.length > 0) {
    io.stderr(
      "spa-keys: the fwknop clients must now encrypt to spad's key: gpg --import server.asc (spa-keys export-server), then fwknop --gpg-recipient-key <its fingerprint>\n",
    );
  }
  if (plan.refusedStanzas > 0) {
    throw new ConfigError(
      'IMPORT_INCOMPLETE',
      `${plan.refusedStanzas} of ${conf.stanzas.length} stanzas were not fully imported (see RESULT and REASON)`,
      {
        hint: 'fix those stanzas or enroll their users with spa-keys add --fwknop, then run import-fwknop again',
      },
    );
  }
}
