/**
 * The `spa-keys` command tree (commander): the commands, their flags and help, wired to their
 * actions: server side in cmd-server.ts, cmd-add.ts (with the add wizard, add-wizard.ts) and
 * cmd-import-fwknop.ts, client side in cmd-client.ts, output formats in format.ts.
 * `createProgram(io)` takes every side channel (cmd-io.ts `SpaKeysIo`: output, stdin, TTY-ness,
 * env, prompts, clock) so tests drive it in-process; cli.ts wires the real process. The actions
 * import library modules and openpgp.js when they run, so `spa-keys --help` loads neither.
 *
 * Server commands use the state dir (`--state-dir`, env SPA_STATE_DIR, default /etc/spa); client
 * commands use the home (`--home`, env SPA_HOME, default ~/.spa). See `list --help` for how
 * `list` picks one.
 */
import { Command, Option } from 'commander';
import { type AddFlags, addAction } from './cmd-add.js';
import { clustered } from './cmd-cluster.js';
import { genAction, importAction } from './cmd-client.js';
import { importFwknopAction } from './cmd-import-fwknop.js';
import { defaultIo, type SpaKeysIo } from './cmd-io.js';
import {
  exportServerAction,
  initAction,
  listAction,
  removeAction,
  setEnabledAction,
  showAction,
} from './cmd-server.js';
import { KEY_TYPES, type KeyType } from './generate.js';

export type { SpaKeysIo } from './cmd-io.js';

export function createProgram(overrides: Partial<SpaKeysIo> = {}): Command {
  const io: SpaKeysIo = { ...defaultIo(), ...overrides };
  const program = new Command('spa-keys');
  program
    .description('manage spa keys: the server allowlist (state dir) and the client keystore (home)')
    .option('--state-dir <dir>', 'server state directory (env SPA_STATE_DIR, default /etc/spa)')
    .option('--home <dir>', 'client key directory (env SPA_HOME, default ~/.spa)')
    .option('--cluster <url>', "the fleet's keyring in Redis: redis://HOST:PORT[/DB] (server commands)")
    .configureHelp({ showGlobalOptions: true })
    .addHelpText(
      'after',
      `
Server side (state dir): init, add, list, show, disable, enable, remove, export-server.
With --cluster URL, add, list, show, disable, enable and remove work on the fleet's keyring in
Redis (signed with the server key; every gateway takes a change within a second).
Client side (home): gen, import, list --client.
Keys are named by full fingerprint, long key id (16 hex), or username.
Exit codes: 0 ok, 1 runtime error, 2 bad or missing flags, 3 key not found/ambiguous/invalid/weak/
secret refused, 4 keyring corrupt or locked, 5 refused (exists, not confirmed, no TTY and no --yes).`,
    );

  program
    .command('init')
    .description('create the server key pair (server.key 0600, server.asc 0644) and an empty allowlist')
    .addOption(new Option('--type <type>', 'key type').choices(KEY_TYPES).default('curve25519'))
    .option('--passphrase-file <file>', 'protect server.key with the passphrase in this file')
    .action(async (opts: { type: KeyType; passphraseFile?: string }, cmd: Command) =>
      initAction(io, opts, cmd),
    );

  program
    .command('add')
    .description("enroll a user's public key (asks for what is missing when run on a terminal)")
    .option('--user <name>', 'username for this key')
    .option('--key <file|->', 'armored public key file (gpg --armor --export), or - for stdin')
    .option('--source <cidrs|any>', "CIDR blocks allowed to knock, comma-separated, or 'any' (default any)")
    .option('--open <ports>', 'ports to open, e.g. tcp/22,udp/53')
    .option('--timeout <s>', 'default firewall timeout, seconds (default 30)')
    .option('--max-timeout <s>', 'longest timeout the key may ask for, seconds (default 300)')
    .option('--cmd-regex <re>', 'commands this key may run (full match, no shell)')
    .option('--cmd-user <user>', 'unix user that runs the commands')
    .option('--cmd-timeout <s>', 'command time limit, seconds (default 60)')
    .option('--expires <date>', 'enrollment expiry: YYYY-MM-DD (00:00 UTC), ISO date-time, or never')
    .option('--forward <dests>', 'internal host:port list this key may be forwarded to (gateway mode)')
    .option('--reply', 'allow this key to ask for a signed reply to its knocks')
    .option('--no-require-source', 'allow a knock to name another address than its source (NAT, -a, -s)')
    .option('--fwknop', 'also accept knocks from the unmodified fwknop client, GPG mode (default off)')
    .option('--fwknop-hmac-key <file>', 'fwknop HMAC key (HMAC_KEY) in this file: knocks must carry its HMAC')
    .option(
      '--fwknop-hmac-key-base64 <file>',
      'the same, base64 (HMAC_KEY_BASE64, as fwknop --key-gen prints)',
    )
    .option('--yes', 'do not ask to confirm the fingerprint')
    .action(async (flags: AddFlags, cmd: Command) =>
      clustered(io, cmd, true, () => addAction(io, flags, cmd)),
    );

  program
    .command('import-fwknop')
    .description("enroll the users of fwknopd's access.conf for fwknop knocks; prints a table per stanza")
    .argument('<access.conf>', 'fwknopd access file, e.g. /etc/fwknop/access.conf')
    .option(
      '--gpg-home <dir>',
      "GnuPG home holding the users' keys (default: each stanza's GPG_HOME_DIR, else /root/.gnupg)",
    )
    .option('--dry-run', 'show what would be enrolled; write nothing')
    .action(async (file: string, opts: { gpgHome?: string; dryRun?: boolean }, cmd: Command) =>
      importFwknopAction(io, file, opts, cmd),
    );

  program
    .command('list')
    .description('list enrolled keys (server) or own and server keys (client)')
    .option('--json', 'machine-readable output')
    .option('--client', 'list the client keystore instead of the server allowlist')
    .addHelpText(
      'after',
      `
Which list: the client keystore with --client or --home; otherwise the server allowlist when
--state-dir or SPA_STATE_DIR is given or /etc/spa/keyring.json exists; otherwise the client
keystore (SPA_HOME, default ~/.spa).`,
    )
    .action(async (opts: { json?: boolean; client?: boolean }, cmd: Command) => listAction(io, opts, cmd));

  program
    .command('show')
    .description('show enrolled keys by username, fingerprint or long key id')
    .argument('<user|fpr>', 'username, full fingerprint, or long key id')
    .option('--json', 'machine-readable output (an array of records)')
    .action(async (query: string, opts: { json?: boolean }, cmd: Command) =>
      showAction(io, query, opts, cmd),
    );

  for (const [name, enabled] of [
    ['disable', false],
    ['enable', true],
  ] as const) {
    program
      .command(name)
      .description(
        `${name} enrolled keys: a username applies to all of that user's keys; a fingerprint or long key id to one`,
      )
      .argument('<user|fpr>', 'username, full fingerprint, or long key id')
      .action(async (query: string, _opts: unknown, cmd: Command) =>
        setEnabledAction(io, query, enabled, cmd),
      );
  }

  program
    .command('remove')
    .description('remove one enrolled key (asks for confirmation on a terminal)')
    .argument('<user|fpr>', 'username (if it has one key), full fingerprint, or long key id')
    .option('--yes', 'do not ask for confirmation (required without a terminal)')
    .action(async (query: string, opts: { yes?: boolean }, cmd: Command) =>
      removeAction(io, query, opts, cmd),
    );

  program
    .command('export-server')
    .description("print the server's public key (server.asc) for users to import")
    .action(async (_opts: unknown, cmd: Command) => exportServerAction(io, cmd));

  program
    .command('gen')
    .description('client: make your key pair and print the public key to send to the admin')
    .requiredOption('--user <name>', 'your username on the server')
    .addOption(new Option('--type <type>', 'key type').choices(KEY_TYPES).default('curve25519'))
    .option('--passphrase-file <file>', 'protect the secret key with the passphrase in this file')
    .action(async (opts: { user: string; type: KeyType; passphraseFile?: string }, cmd: Command) =>
      genAction(io, opts, cmd),
    );

  program
    .command('import')
    .description("client: import a server's public key, or your own secret key exported by GnuPG")
    .argument('<file|->', 'armored or binary key file, or - for stdin')
    .option('--user <name>', 'your username, for your own key (default: from its e-mail address)')
    .option('--name <name>', 'a short name for a server key')
    .action(async (file: string, opts: { user?: string; name?: string }, cmd: Command) =>
      importAction(io, file, opts, cmd),
    );

  return program;
}
