/**
 * The flags of `spa` and `spa connect` (fwknop's names where they exist), the help text after
 * them, and how they layer over the rc file: its [default] stanza, then the `-n NAME` stanza, then
 * the flags (settings.ts resolves the merged layers). The actions are in actions.ts.
 */
import { basename } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../protocol/errors.js';
import { resolveHome } from './keys.js';
import {
  checkStanzaName,
  DEFAULT_STANZA,
  getStanza,
  RC_KEYS,
  type RcKey,
  type RcValues,
  rcPath,
  readRc,
} from './rc.js';
import { type Layer, mergeLayers, resolveSettings, type Settings, toRcValues } from './settings.js';

export interface CliOpts {
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
  randPortRange?: string;
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
  randPortRange: 'rand-port-range',
  natLocal: 'nat-local',
  retries: 'retries',
};

const collect = (value: string, previous: string | undefined): string =>
  previous === undefined ? value : `${previous},${value}`;

/** The knock options, shared by `spa` and `spa connect`. No defaults here: absent means "not given". */
export function addKnockOptions(cmd: Command): Command {
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
      '--rand-port-range <lo-hi>',
      "with --rand-port: draw from this range, the server's gateway.random_ports (default 20000-29999)",
    )
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
    .option(
      '-B, --save-packet <file>',
      'also write the sealed knock (binary) to this new file, mode 0600; retries to FILE.2, FILE.3, ...',
    )
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

export const EPILOG = `
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
export async function loadSettings(
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
