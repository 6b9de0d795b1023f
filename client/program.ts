/**
 * `spa`: the client command line (README.md "Client setup", docs/man/spa.1.md), a thin layer over knock.ts.
 *
 *   spa [options] HOST                 one knock, then exit 0
 *   spa connect [options] HOST PORT    knock, wait for HOST:PORT, relay stdin/stdout (ssh ProxyCommand)
 *
 * Flags follow fwknop's where they exist (-A, -D, -a, -s, -R, -p, -U, -n, --save-rc-stanza,
 * --server-cmd, --fw-timeout, --test, -v). Settings come from the rc file's [default] stanza,
 * then the `-n NAME` stanza, then the flags (settings.ts). Built with `buildProgram()` and run by
 * cli/conventions.ts `runCli`, which prints `spa: error: ...` lines and picks the exit code.
 */
import { basename } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { Command, Option } from 'commander';
import { printWarning, type Write } from '../cli/conventions.js';
import { formatAddress } from '../protocol/address.js';
import { displaySafe } from '../protocol/display.js';
import { ConfigError } from '../protocol/errors.js';
import { formatForwardTarget } from '../protocol/forward.js';
import { describePayload, type Payload } from '../protocol/payload.js';
import type { Reply } from '../protocol/reply.js';
import { resolveHome } from './keys.js';
import { type KnockRequest, type PreparedKnock, prepareKnock } from './knock.js';
import type { AskPassphrase } from './passphrase.js';
import {
  checkStanzaName,
  DEFAULT_STANZA,
  getStanza,
  RC_KEYS,
  type RcKey,
  type RcValues,
  rcPath,
  readRc,
  saveStanza,
} from './rc.js';
import {
  type Layer,
  mergeLayers,
  DEFAULT_RETRIES,
  parseIntIn,
  REPLY_WAIT_MS,
  resolveSettings,
  type Settings,
  toRcValues,
} from './settings.js';
import { hostPort } from './transport.js';

/** Where the program reads and writes; tests pass their own. */
export interface ClientIo {
  /** Data (--test output). */
  readonly out?: Write;
  /** Messages (-v, notices). */
  readonly err?: Write;
  /** spa connect's relay ends. */
  readonly stdin?: Readable;
  readonly stdout?: Writable;
  /** Passphrase prompt (default: the terminal). */
  readonly ask?: AskPassphrase;
}

interface CliOpts {
  access?: string;
  allowIp?: string;
  sourceAny?: boolean;
  resolveIpHttp?: string;
  insecureResolve?: boolean;
  serverPort?: string;
  ipv4?: boolean;
  ipv6?: boolean;
  gpgRecv?: string;
  gpgSign?: string;
  gpgHomeDir?: string;
  gpgExe?: string;
  keyPassphraseFile?: string;
  username?: string;
  fwTimeout?: string;
  serverCmd?: string;
  connectTimeout?: string;
  natAccess?: string;
  randPort?: boolean;
  natLocal?: boolean;
  retries?: string;
  destination?: string;
  namedConfig?: string;
  saveRcStanza?: boolean;
  rcFile?: string;
  home?: string;
  test?: boolean;
  savePacket?: string;
  verbose?: boolean;
}

/** Command-line option (camelCase) to rc key. */
const KEY_OF_OPT: Readonly<Partial<Record<keyof CliOpts, RcKey>>> = {
  access: 'access',
  allowIp: 'allow-ip',
  sourceAny: 'source-any',
  resolveIpHttp: 'resolve-ip-http',
  insecureResolve: 'insecure-resolve',
  serverPort: 'server-port',
  ipv4: 'ipv4',
  ipv6: 'ipv6',
  gpgRecv: 'gpg-recv',
  gpgSign: 'gpg-sign',
  gpgHomeDir: 'gpg-home-dir',
  gpgExe: 'gpg-exe',
  keyPassphraseFile: 'key-passphrase-file',
  username: 'username',
  fwTimeout: 'fw-timeout',
  serverCmd: 'server-cmd',
  connectTimeout: 'connect-timeout',
  natAccess: 'nat-access',
  randPort: 'rand-port',
  natLocal: 'nat-local',
  retries: 'retries',
};

const collect = (value: string, previous: string | undefined): string =>
  previous === undefined ? value : `${previous},${value}`;

/** The knock options, shared by `spa` and `spa connect`. No defaults here: absent means "not given". */
function addKnockOptions(cmd: Command): Command {
  return cmd
    .option(
      '-A, --access <proto/port,...>',
      'what to open, e.g. tcp/22 or tcp/22,udp/53 (repeatable)',
      collect,
    )
    .option('-D, --destination <host>', 'the server (instead of the HOST argument)')
    .option('-a, --allow-ip <ip>', 'address to open for (default: the local address used towards the server)')
    .option(
      '-s, --source-any',
      'ask to open for whatever address the packet comes from (policy must allow it)',
    )
    .option(
      '-R, --resolve-ip-http <url>',
      "learn the address to open for from this https:// URL (it answers with the caller's IP)",
    )
    .option(
      '--insecure-resolve',
      'let -R use a plain http:// URL (anyone on the path can then choose the address opened)',
    )
    .option('-p, --server-port <port>', 'UDP port of the server (default 62201)')
    .option('-4, --ipv4', 'use IPv4 only to reach the server')
    .option('-6, --ipv6', 'use IPv6 only to reach the server')
    .option('--gpg-recv <key>', 'server key: fingerprint, long key id, name, user id text, or ./file.asc')
    .option(
      '--gpg-sign <key>',
      'your signing key: fingerprint, long key id, username, user id text, or ./file.asc',
    )
    .option(
      '--gpg-home-dir <dir>',
      'sign and encrypt with gpg from this home (keys in gpg-agent or on a card)',
    )
    .option('--gpg-exe <path>', 'the gpg binary for --gpg-home-dir (default gpg)')
    .option('--key-passphrase-file <file>', 'passphrase of your signing key (else asked on the terminal)')
    .option('-U, --username <name>', 'username in the knock (default: the one stored with your key)')
    .option('--fw-timeout <seconds>', "how long to keep the port open (default: the server's for you)")
    .option('--server-cmd <command>', 'ask the server to run this command (no -A)')
    .option('-N, --nat-access <host:port>', "gateway mode: forward -A's port to this internal host:port")
    .option('--rand-port', "with -N: use a random external port (signed in the knock) instead of -A's")
    .option(
      '--nat-local',
      "gateway mode: forward to a port on the gateway itself (-N local:PORT, or -A's port)",
    )
    .option(
      '--retries <n>',
      'ask for a signed reply, wait 1 s for it, and knock again (fresh knock) up to N times without one',
    )
    .option('-n, --named-config <name>', 'load settings from this stanza of the rc file')
    .option('--save-rc-stanza', 'save the settings of this run as stanza -n NAME (then knock, unless --test)')
    .option('--rc-file <file>', 'rc file (default HOME/spa.rc)')
    .option('--home <dir>', 'client home with keys.json and spa.rc (default $SPA_HOME or ~/.spa)')
    .option('--test', 'build the knock, print it and its size, send nothing')
    .option('-B, --save-packet <file>', 'also write the sealed knock (binary) to this new file, mode 0600')
    .option('-v, --verbose', 'say what is sent, on stderr');
}

function wrap(words: readonly string[], width: number, indent: string): string {
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur !== '' && cur.length + w.length + 2 > width) {
      lines.push(cur);
      cur = '';
    }
    cur = cur === '' ? w : `${cur}, ${w}`;
  }
  if (cur !== '') lines.push(cur);
  return lines.map((l) => `${indent}${l}`).join(',\n');
}

const EPILOG = `
Keys: --gpg-sign defaults to your only key in the keystore, --gpg-recv to the only server key
(with --gpg-home-dir, --gpg-recv is required).
A key file is read only when written as a path (./server.asc, file:server.asc).

Settings: HOME/spa.rc holds [NAME] stanzas of "key = value" lines; -n NAME loads one, a
[default] stanza applies to every run, and flags override both. Keys are the long flags:
${wrap(RC_KEYS, 76, '  ')}

Exit codes:
  0  knock sent (or printed with --test; connect: relayed until the server closed);
     with --retries: a verified reply said access was granted
  1  runtime error: name not resolved, network unreachable, gpg failed, port never opened,
     no verified reply after the retries
  2  usage: bad or missing flags, bad -A / -a / -R / port / timeout, bad rc file
  3  key: not found, ambiguous, invalid, expired, revoked, wrong or missing passphrase
  4  keystore corrupt or locked
  5  refused: the passphrase prompt was interrupted`;

/** Three layers to settings, plus what --save-rc-stanza would write. */
async function loadSettings(
  opts: CliOpts,
  host: string | undefined,
): Promise<{ settings: Settings; save: RcValues; rcFile: string; home: string }> {
  const home = resolveHome(opts.home);
  const rcFile = rcPath(home, opts.rcFile);
  const rc = await readRc(rcFile);
  const rcName = basename(rcFile);
  const layers: Layer[] = [];
  const def = rc.stanzas.get(DEFAULT_STANZA);
  const name = opts.namedConfig === undefined ? undefined : checkStanzaName(opts.namedConfig);
  if (def && name !== DEFAULT_STANZA)
    layers.push({ label: `${rcName} [${DEFAULT_STANZA}]`, values: def.values });
  let named: Layer | null = null;
  if (name !== undefined) {
    const st = opts.saveRcStanza ? rc.stanzas.get(name) : getStanza(rc, name);
    if (st) named = { label: `${rcName} [${name}]`, values: st.values };
  }
  if (named) layers.push(named);
  if (opts.saveRcStanza && name === undefined) {
    throw new ConfigError('USAGE', '--save-rc-stanza needs a stanza name: -n NAME');
  }
  if (opts.destination !== undefined && host !== undefined && opts.destination !== host) {
    throw new ConfigError('USAGE', `two servers given: -D ${opts.destination} and ${host}`);
  }
  const cli: RcValues = {};
  for (const [opt, key] of Object.entries(KEY_OF_OPT) as [keyof CliOpts, RcKey][]) {
    const v = opts[opt];
    if (v === undefined) continue;
    cli[key] = typeof v === 'boolean' ? (v ? 'yes' : 'no') : v;
  }
  const h = host ?? opts.destination;
  if (h !== undefined) cli.host = h;
  const cliLayer: Layer = { label: 'command line', values: cli };
  const settings = resolveSettings(mergeLayers([...layers, cliLayer]));
  const save = toRcValues(mergeLayers(named ? [named, cliLayer] : [cliLayer]));
  return { settings, save, rcFile, home };
}

function describeSource(src: Payload['source']): string {
  return src === 'any' ? 'any (the packet source)' : formatAddress(src);
}

interface RunContext {
  readonly opts: CliOpts;
  readonly io: ClientIo;
  readonly out: Write;
  readonly err: Write;
  readonly log: ((line: string) => void) | undefined;
}

function context(opts: CliOpts, io: ClientIo): RunContext {
  const out = io.out ?? ((s: string) => void process.stdout.write(s));
  const err = io.err ?? ((s: string) => void process.stderr.write(s));
  // -v lines quote user ids, usernames and commands: escaped so they cannot act on the terminal
  const log = (line: string) => err(`spa: ${displaySafe(line, { backslash: false })}\n`);
  return { opts, io, out, err, log: opts.verbose ? log : undefined };
}

async function prepare(
  ctx: RunContext,
  settings: Settings,
  home: string,
  defaultAccess?: Settings['access'],
): Promise<PreparedKnock> {
  const req: KnockRequest = {
    settings,
    home,
    willSend: !ctx.opts.test,
    ...(defaultAccess ? { defaultAccess } : {}),
    ...(ctx.io.ask ? { ask: ctx.io.ask } : {}),
    ...(ctx.log ? { log: ctx.log } : {}),
  };
  const p = await prepareKnock(req);
  if (settings.source.kind === 'http' && settings.source.url.protocol === 'http:' && p.source !== 'any') {
    printWarning(
      `the address to open for (${formatAddress(p.source)}) came over plain http from ${settings.source.url.host}: ` +
        'anyone on the path could have chosen it (--insecure-resolve)',
      ctx.err,
    );
  }
  ctx.log?.(
    `server ${p.destination.host} = ${hostPort(p.destination.address, p.destination.port)} (udp${p.destination.family}); ` +
      `server key ${p.serverFingerprint}`,
  );
  ctx.log?.(
    `signing key ${p.signer} (${p.engine}), username ${p.username}, source ${describeSource(p.source)}`,
  );
  return p;
}

/** Seal, save the stanza if asked, then print (--test) or send. Returns the sealed knock. */
async function sealAndSend(
  ctx: RunContext,
  p: PreparedKnock,
  save: { rcFile: string; values: RcValues } | null,
  retries: number | null = null,
): Promise<Reply | null> {
  const { payload, packet } = await p.seal();
  if (ctx.opts.savePacket !== undefined) {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(ctx.opts.savePacket, packet, { mode: 0o600, flag: 'wx' }).catch(
      (cause: NodeJS.ErrnoException) => {
        throw new ConfigError(
          'IO',
          `--save-packet: cannot create ${ctx.opts.savePacket} (${cause.code ?? cause.message})`,
          {
            cause,
            hint: cause.code === 'EEXIST' ? 'the file exists; name a new one' : undefined,
          },
        );
      },
    );
  }
  if (save && ctx.opts.namedConfig !== undefined) {
    await saveStanza(save.rcFile, ctx.opts.namedConfig, save.values);
    ctx.err(`spa: saved stanza [${ctx.opts.namedConfig}] in ${save.rcFile}\n`);
  }
  if (ctx.opts.test) {
    ctx.out(`${JSON.stringify(describePayload(payload))}\npacket bytes: ${packet.length}\n`);
    return null;
  }
  ctx.log?.(`payload ${JSON.stringify(describePayload(payload))}`);
  if (retries !== null) {
    // the first attempt sends this packet; each retry seals a fresh one (new nonce)
    const { knockUntilReply, grantedLine } = await import('./await-reply.js');
    const g = await knockUntilReply(p, {
      first: { payload, packet },
      retries,
      waitMs: REPLY_WAIT_MS,
      ...(ctx.log ? { log: ctx.log } : {}),
    });
    ctx.err(`spa: ${grantedLine(g.reply)}\n`);
    ctx.log?.(`reply after knock ${g.knocks}, ${g.latencyMs.toFixed(1)} ms after it was sent`);
    return g.reply;
  }
  await p.send(packet);
  ctx.log?.(`sent ${packet.length} bytes to ${hostPort(p.destination.address, p.destination.port)}`);
  if (p.access && payload.forward) {
    ctx.err(
      `spa: knock sent: ${p.access.map((a) => `${a.proto}/${a.port}`).join(',')} -> ${formatForwardTarget(payload.forward)}\n`,
    );
  }
  return null;
}

async function knockAction(host: string | undefined, opts: CliOpts, io: ClientIo): Promise<void> {
  const ctx = context(opts, io);
  const { settings, save, rcFile, home } = await loadSettings(opts, host);
  const p = await prepare(ctx, settings, home);
  try {
    await sealAndSend(ctx, p, opts.saveRcStanza ? { rcFile, values: save } : null, settings.retries);
  } finally {
    p.close();
  }
}

async function connectAction(host: string, portText: string, opts: CliOpts, io: ClientIo): Promise<void> {
  const ctx = context(opts, io);
  const port = parseIntIn(portText, 'PORT', 1, 65535);
  const loaded = await loadSettings(opts, host);
  const { save, rcFile, home } = loaded;
  // a random external port is confirmed by the signed reply before connecting to it
  const settings: Settings = {
    ...loaded.settings,
    retries: loaded.settings.retries ?? (loaded.settings.randPort ? DEFAULT_RETRIES : null),
  };
  const p = await prepare(ctx, settings, home, [{ proto: 'tcp', port }]);
  let sock: import('node:net').Socket;
  try {
    const reply = await sealAndSend(
      ctx,
      p,
      opts.saveRcStanza ? { rcFile, values: save } : null,
      settings.retries,
    );
    if (opts.test) return;
    const target = reply?.granted[0]?.port ?? (settings.forward ? p.access?.[0]?.port : undefined) ?? port;
    const { waitForPort } = await import('./connect.js');
    sock = await waitForPort({
      address: p.destination.address,
      port: target,
      timeoutMs: settings.connectTimeout * 1000,
      reknock: async () => {
        const again = await p.seal();
        await p.send(again.packet);
        ctx.log?.(`sent ${again.packet.length} bytes again`);
      },
      ...(ctx.log ? { log: ctx.log } : {}),
    });
  } finally {
    p.close();
  }
  const { relay } = await import('./connect.js');
  await relay(sock, io.stdin ?? process.stdin, io.stdout ?? process.stdout);
}

/** The `spa` program. `io` replaces the process's streams (tests). */
export function buildProgram(io: ClientIo = {}): Command {
  const program = addKnockOptions(
    new Command('spa')
      .description('Single Packet Authorization client: one signed, encrypted UDP knock opens a port for you')
      .usage('[options] HOST')
      .argument('[HOST]', 'the server: name or IPv4/IPv6 address (or -D HOST, or host = in the -n stanza)')
      .helpCommand(false)
      .enablePositionalOptions(),
  )
    .addHelpText('after', EPILOG)
    .action(async (host: string | undefined, opts: CliOpts) => knockAction(host, opts, io));

  const connect = addKnockOptions(
    new Command('connect')
      .description('knock, wait until HOST:PORT answers, then relay stdin/stdout (ssh ProxyCommand)')
      .usage("[options] HOST PORT   e.g. ssh -o ProxyCommand='spa connect -n NAME %h %p' host")
      .argument('<HOST>', 'the server')
      .argument(
        '<PORT>',
        'TCP port to connect to once open; the knock asks for tcp/PORT unless -A says otherwise',
      ),
  )
    .addOption(
      new Option(
        '--connect-timeout <seconds>',
        'give up when the port has not answered after this long (default 5)',
      ),
    )
    .action(async (host: string, port: string, opts: CliOpts, cmd: Command) => {
      const parentOpts = Object.fromEntries(
        Object.entries(cmd.parent?.opts() ?? {}).filter(([, v]) => v !== undefined),
      ) as CliOpts;
      await connectAction(host, port, { ...parentOpts, ...opts }, io);
    });
  program.addCommand(connect);
  return program;
}
