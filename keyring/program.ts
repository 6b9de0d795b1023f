/**
 * The `spa-keys` command tree (commander), thin over the library in allowlist.ts / keystore.ts.
 * `createProgram(io)` takes every side channel (output, stdin, TTY-ness, env, prompts, clock)
 * so tests drive it in-process; cli.ts wires the real process. Library modules and openpgp.js
 * are imported inside the actions, so `spa-keys --help` loads only commander.
 *
 * Server commands use the state dir (`--state-dir`, env SPA_STATE_DIR, default /etc/spa); client
 * commands use the home (`--home`, env SPA_HOME, default ~/.spa). See `list --help` for how
 * `list` picks one.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { displaySafe, displaySafeJson } from '../protocol/display.js';
import { ConfigError } from '../protocol/errors.js';
import { formatMessage, printWarning, type Write } from '../cli/conventions.js';
import { KEY_TYPES, type KeyType } from './generate.js';
import type { KeyInfo } from './inspect.js';
import type { Prompter } from './prompts.js';
import type { KeyRecord } from './schema.js';

export interface SpaKeysIo {
  stdout: Write;
  stderr: Write;
  /** All of stdin (for `--key -` and `import -`): armored text or binary key bytes. */
  readStdin: () => Promise<string | Uint8Array>;
  /** True when a person can answer prompts (stdin and stderr are terminals). */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  prompter: () => Promise<Prompter>;
  now: () => Date;
}

const STDIN_MAX = 1_000_000;

async function readProcessStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin) {
    const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    n += b.length;
    if (n > STDIN_MAX) throw new ConfigError('USAGE', `stdin is larger than ${STDIN_MAX} bytes`);
    chunks.push(b);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

function defaultIo(): SpaKeysIo {
  return {
    stdout: (s) => {
      process.stdout.write(s);
    },
    stderr: (s) => {
      process.stderr.write(s);
    },
    readStdin: readProcessStdin,
    isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    env: process.env,
    prompter: async () => (await import('./prompts.js')).inquirerPrompter(),
    now: () => new Date(),
  };
}

interface GlobalOpts {
  stateDir?: string;
  home?: string;
  cluster?: string;
}

/**
 * Runs a server command against the fleet's keyring when `--cluster URL` is given
 * (server/cluster/keyring.ts): Redis' signed keyring becomes this state dir's keyring.json, `fn`
 * runs on it as it would without a cluster, and a change (`write`) is signed with the server key
 * as the next revision and stored back, which every gateway picks up. Without --cluster, `fn` alone.
 */
async function clustered<R>(io: SpaKeysIo, cmd: Command, write: boolean, fn: () => Promise<R>): Promise<R> {
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

async function fileExists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** Key text from a file: armored as UTF-8 text, binary as bytes. */
async function readKeyBytes(arg: string, io: SpaKeysIo): Promise<string | Uint8Array> {
  if (arg === '-') return io.readStdin();
  let data: Buffer;
  try {
    const st = await stat(arg);
    if (!st.isFile()) throw new ConfigError('USAGE', `${arg} is not a file`);
    if (st.size > STDIN_MAX) throw new ConfigError('KEY_INVALID', `${arg} is larger than ${STDIN_MAX} bytes`);
    data = await readFile(arg);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError('IO', `cannot read ${arg}: ${(e as Error).message}`, { cause: e });
  }
  return new Uint8Array(data);
}

function day(iso: string | null): string {
  if (iso === null) return 'never';
  return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso;
}

function expiryText(r: KeyRecord, now: Date): string {
  if (r.expiresAt === null) return 'never';
  const t = day(r.expiresAt);
  return Date.parse(r.expiresAt) <= now.getTime() ? `EXPIRED ${t}` : t;
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, c] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  return rows
    .map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}

/** User ids as shown: escaped (protocol/display.ts), one per line after the first. */
function userIdLines(label: string, userIds: readonly string[], indent: number): string[] {
  const uids = userIds.length === 0 ? ['(none)'] : userIds.map((u) => displaySafe(u));
  return [`${label}${uids[0]}`, ...uids.slice(1).map((u) => `${' '.repeat(indent)}${u}`)];
}

/**
 * What the admin checks before confirming an enrollment. Every string from the key is escaped,
 * and the fingerprint is the last line, right above the question: nothing from the key is
 * printed between the fingerprint and "Does this fingerprint match".
 */
export function keySummary(info: KeyInfo, algorithmLine: string): string {
  const lines = [
    ...userIdLines('  user ids     ', info.userIds, 15),
    `  algorithm    ${algorithmLine}`,
    `  created      ${info.createdAt.slice(0, 10)}`,
    `  expires      ${info.expiresAt ? info.expiresAt.slice(0, 10) : 'never'} (the key's own expiry)`,
  ];
  if (info.isEncrypted) lines.push('  protection   passphrase-protected');
  lines.push(`  fingerprint  ${info.fingerprint}`);
  return `${lines.join('\n')}\n`;
}

export function showRecord(r: KeyRecord, now: Date): string {
  const cmd = r.command
    ? `${displaySafe(JSON.stringify(r.command.regex), { backslash: false })} as ${displaySafe(r.command.runAs)}, ${r.command.timeoutSeconds} s` +
      (r.command.openPorts.length ? `, opens ${r.command.openPorts.join(',')}` : '')
    : 'none';
  return `${[
    `${displaySafe(r.username)}  ${r.fingerprint}`,
    `  enabled          ${r.enabled ? 'yes' : 'no'}`,
    ...userIdLines('  user ids         ', r.userIds, 19),
    `  algorithm        ${displaySafe(r.algorithm)}`,
    `  signing keys     ${r.signingFingerprints.join(', ')}`,
    `  enrolled         ${r.createdAt}`,
    `  expires          ${expiryText(r, now)}`,
    `  sources          ${r.sources === 'any' ? 'any' : r.sources.join(', ')}`,
    `  require source   ${r.requireSourceAddress ? 'yes (knock must name the packet source address)' : 'no (NAT, -a and -s allowed)'}`,
    `  open ports       ${r.openPorts.join(', ')}`,
    `  timeout          ${r.defaultTimeout} s (max ${r.maxTimeout} s)`,
    `  command          ${cmd}`,
    `  fwknop knocks    ${fwknopText(r)}`,
    `  forward          ${r.forward ? r.forward.join(', ') : 'none'}`,
    `  signed reply     ${r.reply === true ? 'yes' : 'no'}`,
  ].join('\n')}\n`;
}

function fwknopText(r: KeyRecord): string {
  if (!r.fwknop) return 'no';
  const hmac = r.fwknop.hmacKey ? 'HMAC key set' : 'no HMAC';
  const user = r.fwknop.requireUsername ? `, username must be ${displaySafe(r.fwknop.requireUsername)}` : '';
  return `yes (${hmac}${user})`;
}

function sortRecords(rs: KeyRecord[]): KeyRecord[] {
  return rs.sort((a, b) =>
    a.username === b.username ? a.createdAt.localeCompare(b.createdAt) : a.username.localeCompare(b.username),
  );
}

/** Best effort: does a unix account exist here (for a warning only)? */
async function unixUserExists(name: string): Promise<boolean | null> {
  try {
    const passwd = await readFile('/etc/passwd', 'utf8');
    return passwd.split('\n').some((l) => l.startsWith(`${name}:`));
  } catch {
    return null;
  }
}

interface AddFlags {
  user?: string;
  key?: string;
  source?: string;
  open?: string;
  timeout?: string;
  maxTimeout?: string;
  cmdRegex?: string;
  cmdUser?: string;
  cmdTimeout?: string;
  expires?: string;
  forward?: string;
  reply?: boolean;
  yes?: boolean;
  requireSource: boolean;
  fwknop?: boolean;
  fwknopHmacKey?: string;
  fwknopHmacKeyBase64?: string;
}

/** An fwknop HMAC key file: a secret, so its permissions are checked like a passphrase file's. */
async function readFwknopHmacKey(path: string, base64: boolean, flag: string): Promise<string> {
  const { readCheckedFile } = await import('./file-safety.js');
  const { parseFwknopHmacKey } = await import('./policy.js');
  const f = await readCheckedFile(path, { what: 'fwknop HMAC key file', secret: true, maxBytes: 4096 });
  if (f === null) throw new ConfigError('IO', `${flag}: cannot read ${path}: no such file`, { field: flag });
  return parseFwknopHmacKey(f.data.toString('utf8'), base64, flag);
}

/** A record as list/show print it: the fwknop HMAC key is a secret and never printed. */
export function redactRecord(r: KeyRecord): KeyRecord {
  if (!r.fwknop?.hmacKey) return r;
  return { ...r, fwknop: { ...r.fwknop, hmacKey: '(set)' } };
}

const PUBLIC_END = /-----END PGP (PUBLIC|PRIVATE) KEY BLOCK-----/;

async function addAction(io: SpaKeysIo, flags: AddFlags, cmd: Command): Promise<void> {
  const lib = await import('./allowlist.js');
  const pol = await import('./policy.js');
  const insp = await import('./inspect.js');
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const stateDir = lib.resolveStateDir(g.stateDir, io.env);
  const now = io.now();
  const canAsk = io.isTTY && flags.key !== '-';

  // flags given are checked before anything else happens
  const given = {
    username: flags.user !== undefined ? pol.parseUsername(flags.user) : undefined,
    sources: flags.source !== undefined ? pol.parseSources(flags.source) : undefined,
    openPorts: flags.open !== undefined ? pol.parseOpenPorts(flags.open) : undefined,
    defaultTimeout: flags.timeout !== undefined ? pol.parseTimeout(flags.timeout) : undefined,
    maxTimeout:
      flags.maxTimeout !== undefined ? pol.parseTimeout(flags.maxTimeout, '--max-timeout') : undefined,
    cmdRegex: flags.cmdRegex !== undefined ? pol.parseCommandRegex(flags.cmdRegex) : undefined,
    cmdUser: flags.cmdUser !== undefined ? pol.parseRunAs(flags.cmdUser) : undefined,
    cmdTimeout: flags.cmdTimeout !== undefined ? pol.parseCmdTimeout(flags.cmdTimeout) : undefined,
    expiresAt: flags.expires !== undefined ? pol.parseExpiry(flags.expires, now) : undefined,
    forward: flags.forward !== undefined ? pol.parseForward(flags.forward) : undefined,
    reply: flags.reply === true ? true : undefined,
    requireSource: cmd.getOptionValueSource('requireSource') === 'cli' ? flags.requireSource : undefined,
  };
  if (flags.fwknopHmacKey !== undefined && flags.fwknopHmacKeyBase64 !== undefined) {
    throw new ConfigError('USAGE', '--fwknop-hmac-key and --fwknop-hmac-key-base64: give one of them');
  }
  const hmacFlag = flags.fwknopHmacKey !== undefined ? '--fwknop-hmac-key' : '--fwknop-hmac-key-base64';
  const hmacFile = flags.fwknopHmacKey ?? flags.fwknopHmacKeyBase64;
  if (hmacFile !== undefined && flags.fwknop !== true) {
    throw new ConfigError('USAGE', `${hmacFlag} needs --fwknop`, {
      hint: 'the HMAC key is for knocks from the fwknop client, which --fwknop allows',
    });
  }
  const givenHmac =
    hmacFile !== undefined
      ? await readFwknopHmacKey(hmacFile, flags.fwknopHmacKeyBase64 !== undefined, hmacFlag)
      : undefined;
  const missing: string[] = [];
  if (given.username === undefined) missing.push('--user');
  if (flags.key === undefined) missing.push('--key');
  if (given.openPorts === undefined) missing.push('--open');
  if (given.cmdRegex !== undefined && given.cmdUser === undefined) missing.push('--cmd-user');
  if (given.cmdRegex === undefined && (given.cmdUser !== undefined || given.cmdTimeout !== undefined)) {
    missing.push('--cmd-regex');
  }
  if (missing.length > 0 && !canAsk) {
    throw new ConfigError(
      'USAGE',
      `missing required flag${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`,
      {
        hint:
          flags.key === '-' && io.isTTY
            ? 'with --key - stdin holds the key, so nothing can be asked: give every flag'
            : "give them, or run 'spa-keys add' on a terminal to be asked",
      },
    );
  }
  if (given.defaultTimeout !== undefined && given.maxTimeout !== undefined) {
    pol.checkTimeouts(given.defaultTimeout, given.maxTimeout);
  }
  const askAll = canAsk && missing.length > 0;
  // an uninitialised or corrupt state dir is reported before any question
  const before = await lib.readAllowlistFile(stateDir);

  const { minimalKey } = await import('./minimize.js');
  const load = async (text: string | Uint8Array, what: string) => {
    // what is stored is the minimal key: a key bloated in transit must not reach the daemon
    const key = await minimalKey(await insp.parseKey(text), now, what);
    const info = await insp.describeKey(key, now);
    insp.assertPublic(info, what);
    insp.checkUsable(info, 'client');
    const already = before.keys[info.fingerprint];
    if (already) throw lib.existsError(already);
    return { key, info };
  };

  let p: Prompter | undefined;
  const prompter = async () => {
    p ??= await io.prompter();
    return p;
  };

  let loaded: Awaited<ReturnType<typeof load>>;
  if (flags.key !== undefined) {
    loaded = await load(
      await readKeyBytes(flags.key, io),
      flags.key === '-' ? 'the key on stdin' : flags.key,
    );
  } else {
    const q = await prompter();
    const byFile = new Map<string, Awaited<ReturnType<typeof load>>>();
    for (;;) {
      const ans = (
        await q.input({
          message: "User's public key: path of an armored file, or - to paste it",
          validate: async (v) => {
            const t = v.trim();
            if (t === '') return 'required: a file path, or - to paste the key';
            if (t === '-') return true;
            try {
              byFile.set(t, await load(await readKeyBytes(t, io), t));
              return true;
            } catch (e) {
              return formatMessage((e as Error).message);
            }
          },
        })
      ).trim();
      if (ans !== '-') {
        const l = byFile.get(ans);
        if (l) {
          loaded = l;
          break;
        }
        continue;
      }
      const text = await q.readBlock({
        message: 'Paste the armored public key (it ends with -----END PGP PUBLIC KEY BLOCK-----):',
        end: PUBLIC_END,
      });
      try {
        loaded = await load(text, 'the pasted key');
        break;
      } catch (e) {
        q.say(`spa: error: ${formatMessage((e as Error).message)}`);
      }
    }
  }
  const { key, info } = loaded;

  io.stderr(`key to enroll:\n${keySummary(info, insp.algorithmSummary(info))}`);
  if (!flags.yes && io.isTTY) {
    const ok = await (
      await prompter()
    ).confirm({
      message: 'Does this fingerprint match the one the user gave you (check it out of band)?',
      default: false,
    });
    if (!ok) {
      throw new ConfigError('NOT_CONFIRMED', 'fingerprint not confirmed; nothing was stored', {
        hint: 'compare the fingerprint with the key owner by another channel, then run add again',
      });
    }
  }

  const ask = async (message: string, def: string | undefined, parse: (t: string) => unknown) => {
    const q = await prompter();
    return (
      await q.input({
        message,
        ...(def !== undefined ? { default: def } : {}),
        validate: pol.asValidator(parse),
      })
    ).trim();
  };

  const username =
    given.username ??
    pol.parseUsername(
      await ask('Username for this key', pol.usernameFromUserId(info.userIds[0]) ?? undefined, (t) =>
        pol.parseUsername(t),
      ),
    );
  const sources =
    given.sources ??
    (askAll
      ? pol.parseSources(
          await ask('Source addresses allowed to knock (CIDR list, or any)', 'any', (t) =>
            pol.parseSources(t),
          ),
        )
      : 'any');
  const openPorts =
    given.openPorts ??
    pol.parseOpenPorts(
      await ask('Ports to open (e.g. tcp/22,udp/53)', 'tcp/22', (t) => pol.parseOpenPorts(t)),
    );
  const requireSourceAddress =
    given.requireSource ??
    (askAll
      ? await (
          await prompter()
        ).confirm({
          message: "Must the knock name the packet's own source address? (answer no for users behind NAT)",
          default: true,
        })
      : true);
  const defaultTimeout =
    given.defaultTimeout ??
    (askAll
      ? pol.parseTimeout(
          await ask('Default firewall timeout, seconds', String(pol.DEFAULT_TIMEOUT), (t) =>
            pol.parseTimeout(t),
          ),
        )
      : pol.DEFAULT_TIMEOUT);
  const maxTimeout =
    given.maxTimeout ??
    (askAll
      ? pol.parseTimeout(
          await ask(
            'Longest timeout this key may ask for, seconds',
            String(Math.max(pol.DEFAULT_MAX_TIMEOUT, defaultTimeout)),
            (t) => pol.checkTimeouts(defaultTimeout, pol.parseTimeout(t, '--max-timeout')),
          ),
          '--max-timeout',
        )
      : pol.DEFAULT_MAX_TIMEOUT);
  pol.checkTimeouts(defaultTimeout, maxTimeout);

  let command: KeyRecord['command'] = null;
  let wantCommand = given.cmdRegex !== undefined || given.cmdUser !== undefined;
  if (!wantCommand && askAll) {
    wantCommand = await (
      await prompter()
    ).confirm({
      message: 'Allow this key to request a server command?',
      default: false,
    });
  }
  if (wantCommand) {
    const regex =
      given.cmdRegex ??
      pol.parseCommandRegex(
        await ask('Command regex (matched against the whole command)', undefined, (t) =>
          pol.parseCommandRegex(t),
        ),
      );
    for (const w of pol.commandRegexWarnings(regex)) printWarning(w, io.stderr);
    const runAs =
      given.cmdUser ??
      pol.parseRunAs(await ask('Run the command as unix user', undefined, (t) => pol.parseRunAs(t)));
    if (runAs === 'root') {
      printWarning(
        '--cmd-user root: every command this regex allows will run with full root privileges; prefer an unprivileged user',
        io.stderr,
      );
    }
    if ((await unixUserExists(runAs)) === false) {
      printWarning(
        `--cmd-user ${runAs}: no such user on this host; commands will fail until it exists`,
        io.stderr,
      );
    }
    const timeoutSeconds =
      given.cmdTimeout ??
      (askAll
        ? pol.parseCmdTimeout(
            await ask('Command time limit, seconds', String(pol.DEFAULT_CMD_TIMEOUT), (t) =>
              pol.parseCmdTimeout(t),
            ),
          )
        : pol.DEFAULT_CMD_TIMEOUT);
    command = { regex, runAs, timeoutSeconds, openPorts: [] };
  }
  let fwknop: KeyRecord['fwknop'];
  let wantFwknop = flags.fwknop === true;
  if (!wantFwknop && askAll) {
    wantFwknop = await (
      await prompter()
    ).confirm({
      message: 'Also accept knocks from the unmodified fwknop client (GPG mode) for this key?',
      default: false,
    });
  }
  if (wantFwknop) {
    let hmacKey = givenHmac ?? null;
    if (givenHmac === undefined && askAll) {
      const ans = await ask(
        'fwknop HMAC key file (its HMAC_KEY_BASE64 line, as fwknop --key-gen prints it; empty for none)',
        '',
        () => true,
      );
      if (ans !== '') hmacKey = await readFwknopHmacKey(ans, true, 'fwknop HMAC key file');
    }
    fwknop = { hmacKey, requireUsername: null };
    if (hmacKey === null) {
      printWarning(
        'fwknop knocks without an HMAC reach decryption from any source; an HMAC key (--fwknop-hmac-key-base64) lets spad drop them before',
        io.stderr,
      );
    }
  }

  const expiresAt =
    given.expiresAt !== undefined
      ? given.expiresAt
      : askAll
        ? pol.parseExpiry(
            await ask('Enrollment expires on (YYYY-MM-DD, or never)', 'never', (t) =>
              pol.parseExpiry(t, now),
            ),
            now,
          )
        : null;

  let forward = given.forward;
  if (forward === undefined && askAll) {
    const text = await ask(
      'Internal hosts this key may be forwarded to (host:port list, local:port, or none)',
      'none',
      (t) => (t.trim().toLowerCase() === 'none' ? [] : pol.parseForward(t)),
    );
    forward = text.toLowerCase() === 'none' ? [] : pol.parseForward(text);
  }
  const reply =
    given.reply ??
    (askAll
      ? await (
          await prompter()
        ).confirm({
          message: 'May this key ask for a signed "door is open" reply?',
          default: false,
        })
      : false);

  const pub = key.isPrivate() ? key.toPublic() : key;
  const record = lib.buildRecord(
    info,
    pub.armor(),
    {
      username,
      sources,
      openPorts,
      requireSourceAddress,
      defaultTimeout,
      maxTimeout,
      expiresAt,
      command,
      ...(fwknop ? { fwknop } : {}),
      ...(forward && forward.length > 0 ? { forward } : {}),
      ...(reply ? { reply } : {}),
    },
    now,
  );
  await lib.addRecord(stateDir, record);
  io.stdout(`enrolled ${record.username} ${record.fingerprint}\n`);
  const others = Object.values(before.keys).filter((r) => r.username === record.username).length;
  if (others > 0) io.stderr(`spa-keys: ${record.username} now has ${others + 1} enrolled keys\n`);
}

async function importFwknopAction(
  io: SpaKeysIo,
  file: string,
  opts: { gpgHome?: string; dryRun?: boolean },
  cmd: Command,
): Promise<void> {
  const lib = await import('./allowlist.js');
  const insp = await import('./inspect.js');
  const imp = await import('./import-fwknop.js');
  const { minimalKey } = await import('./minimize.js');
  const stateDir = lib.resolveStateDir(cmd.optsWithGlobals<GlobalOpts>().stateDir, io.env);
  const now = io.now();
  const before = await lib.readAllowlistFile(stateDir);
  const conf = await imp.readAccessConf(file);
  if (conf.stanzas.length === 0) {
    throw new ConfigError('CONFIG_INVALID', `${file}: no stanza (a stanza starts with SOURCE)`);
  }
  const plan = await imp.planImport(conf, {
    gpg: imp.systemGpg,
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
    .action(async (opts: { type: KeyType; passphraseFile?: string }, cmd: Command) => {
      const lib = await import('./allowlist.js');
      const stateDir = lib.resolveStateDir(cmd.optsWithGlobals<GlobalOpts>().stateDir, io.env);
      const { readPassphraseFile } = await import('./file-safety.js');
      const passphrase = opts.passphraseFile ? await readPassphraseFile(opts.passphraseFile) : undefined;
      const r = await lib.initServer(stateDir, { type: opts.type, passphrase });
      io.stdout(`fingerprint: ${r.fingerprint}\npublic key: ${r.publicKeyPath}\n`);
      io.stderr(`spa-keys: give ${r.publicKeyPath} to your users (spa-keys import server.asc)\n`);
    });

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
    .action(async (opts: { json?: boolean; client?: boolean }, cmd: Command) => {
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
      const now = io.now();
      const rows = [['USER', 'FINGERPRINT', 'ENABLED', 'EXPIRES', 'PORTS', 'SOURCES']];
      for (const r of recs) {
        rows.push([
          displaySafe(r.username),
          r.fingerprint,
          r.enabled ? 'yes' : 'no',
          expiryText(r, now),
          r.openPorts.join(','),
          r.sources === 'any' ? 'any' : r.sources.join(','),
        ]);
      }
      io.stdout(`${table(rows)}\n`);
    });

  program
    .command('show')
    .description('show enrolled keys by username, fingerprint or long key id')
    .argument('<user|fpr>', 'username, full fingerprint, or long key id')
    .option('--json', 'machine-readable output (an array of records)')
    .action(async (query: string, opts: { json?: boolean }, cmd: Command) => {
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
    });

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
      .action(async (query: string, _opts: unknown, cmd: Command) => {
        const lib = await import('./allowlist.js');
        const stateDir = lib.resolveStateDir(cmd.optsWithGlobals<GlobalOpts>().stateDir, io.env);
        const changed = await clustered(io, cmd, true, () => lib.setEnabled(stateDir, query, enabled));
        for (const r of changed)
          io.stdout(`${enabled ? 'enabled' : 'disabled'} ${r.username} ${r.fingerprint}\n`);
      });
  }

  program
    .command('remove')
    .description('remove one enrolled key (asks for confirmation on a terminal)')
    .argument('<user|fpr>', 'username (if it has one key), full fingerprint, or long key id')
    .option('--yes', 'do not ask for confirmation (required without a terminal)')
    .action(async (query: string, opts: { yes?: boolean }, cmd: Command) => {
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
    });

  program
    .command('export-server')
    .description("print the server's public key (server.asc) for users to import")
    .action(async (_opts: unknown, cmd: Command) => {
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
    });

  program
    .command('gen')
    .description('client: make your key pair and print the public key to send to the admin')
    .requiredOption('--user <name>', 'your username on the server')
    .addOption(new Option('--type <type>', 'key type').choices(KEY_TYPES).default('curve25519'))
    .option('--passphrase-file <file>', 'protect the secret key with the passphrase in this file')
    .action(async (opts: { user: string; type: KeyType; passphraseFile?: string }, cmd: Command) => {
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
    });

  program
    .command('import')
    .description("client: import a server's public key, or your own secret key exported by GnuPG")
    .argument('<file|->', 'armored or binary key file, or - for stdin')
    .option('--user <name>', 'your username, for your own key (default: from its e-mail address)')
    .option('--name <name>', 'a short name for a server key')
    .action(async (file: string, opts: { user?: string; name?: string }, cmd: Command) => {
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
        io.stdout(
          `imported server key ${r.record.fingerprint}${r.record.name ? ` as ${r.record.name}` : ''}\n`,
        );
      }
    });

  return program;
}

async function listClient(io: SpaKeysIo, g: GlobalOpts, json: boolean): Promise<void> {
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
  const rows = [['KIND', 'FINGERPRINT', 'NAME', 'USER ID']];
  const uid = (u: readonly string[]) => displaySafe(u[0] ?? '');
  for (const r of ownOut) rows.push(['own', r.fingerprint, displaySafe(r.username), uid(r.userIds)]);
  for (const r of servers) rows.push(['server', r.fingerprint, displaySafe(r.name ?? '-'), uid(r.userIds)]);
  io.stdout(`${table(rows)}\n`);
}
