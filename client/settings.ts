/**
 * What one knock is made of, from three layers: the rc file's `[default]` stanza, the `-n NAME`
 * stanza, then the command line, each overriding the one before. Values arrive as text (flags and
 * rc lines alike) and are checked here once, with protocol/'s parsers, so a bad value names where
 * it came from: `-A/--access: ...` or `spa.rc [work] access: ...`.
 *
 * Some keys form groups that are overridden as a whole: a later layer that sets any member
 * clears the earlier layers' members. So `-s` on the command line beats `allow-ip` in a stanza,
 * and `--server-cmd` beats a stanza's `access`, instead of making a conflict.
 */
import { type PortSpec, parseAccessList } from '../protocol/access.js';
import { type Address, parseAddress, unmapV4 } from '../protocol/address.js';
import { ConfigError } from '../protocol/errors.js';
import {
  type ForwardTarget,
  type PortRange,
  parseForwardTarget,
  parsePortRange,
} from '../protocol/forward.js';
import {
  COMMAND_MAX_BYTES,
  DEFAULT_RANDOM_PORTS,
  DEFAULT_SPA_PORT,
  TIMEOUT_MAX_SECONDS,
  USERNAME_RE,
} from '../protocol/limits.js';
import { RC_KEYS, RC_SWITCHES, type RcKey, type RcValues } from './rc.js';

/** Default bound on `spa connect`'s wait for the port to answer, seconds. */
export const DEFAULT_CONNECT_TIMEOUT = 5;
export const CONNECT_TIMEOUT_MAX = 300;
/** `--retries` when a reply is asked for without it (spa connect --rand-port), and its bound. */
export const DEFAULT_RETRIES = 3;
export const RETRIES_MAX = 10;
/** How long each knock waits for its signed reply, ms. */
export const REPLY_WAIT_MS = 1000;

/** How the payload's address is chosen (SPEC.md §6). */
export type SourceChoice =
  | { readonly kind: 'auto' }
  | { readonly kind: 'ip'; readonly address: Address }
  | { readonly kind: 'any' }
  | { readonly kind: 'http'; readonly url: URL };

export interface Settings {
  readonly host: string | undefined;
  /** undefined when neither -A nor an rc `access` was given. */
  readonly access: readonly PortSpec[] | undefined;
  readonly source: SourceChoice;
  readonly serverPort: number;
  readonly family: 4 | 6 | undefined;
  readonly gpgRecv: string | undefined;
  readonly gpgSign: string | undefined;
  readonly gpgHomeDir: string | undefined;
  readonly gpgExe: string;
  readonly keyPassphraseFile: string | undefined;
  readonly username: string | undefined;
  readonly fwTimeout: number;
  readonly serverCmd: string | null;
  readonly connectTimeout: number;
  /** -N / --nat-local: where the gateway should forward (SPEC.md §4.6); null = no forwarding. */
  readonly forward: ForwardTarget | null;
  /** --rand-port: the external port is drawn at random from the server's range. */
  readonly randPort: boolean;
  /** --rand-port-range: that range (the server's `gateway.random_ports`); default 20000-29999. */
  readonly randPortRange: PortRange;
  /** --retries N: ask for a signed reply and knock up to N more times without one; null = no reply asked. */
  readonly retries: number | null;
}

export interface Layer {
  /** Where the values come from, for messages: 'command line', 'spa.rc [work]'. */
  readonly label: string;
  readonly values: RcValues;
}

/** Flag spelling of each key, for errors about command-line values. */
export const FLAG_OF: Readonly<Record<RcKey, string>> = {
  host: 'HOST',
  access: '-A/--access',
  'allow-ip': '-a/--allow-ip',
  'source-any': '-s/--source-any',
  'resolve-ip-http': '-R/--resolve-ip-http',
  'insecure-resolve': '--insecure-resolve',
  'server-port': '-p/--server-port',
  ipv4: '-4/--ipv4',
  ipv6: '-6/--ipv6',
  'gpg-recv': '--gpg-recv',
  'gpg-sign': '--gpg-sign',
  'gpg-home-dir': '--gpg-home-dir',
  'gpg-exe': '--gpg-exe',
  'key-passphrase-file': '--key-passphrase-file',
  username: '-U/--username',
  'fw-timeout': '--fw-timeout',
  'server-cmd': '--server-cmd',
  'connect-timeout': '--connect-timeout',
  'nat-access': '-N/--nat-access',
  'rand-port': '--rand-port',
  'rand-port-range': '--rand-port-range',
  'nat-local': '--nat-local',
  retries: '--retries',
};

const GROUPS: readonly (readonly RcKey[])[] = [
  ['allow-ip', 'source-any', 'resolve-ip-http'],
  ['ipv4', 'ipv6'],
  ['access', 'server-cmd'],
  ['nat-access', 'nat-local'],
];

function groupOf(k: RcKey): readonly RcKey[] {
  return GROUPS.find((g) => g.includes(k)) ?? [k];
}

/** One value and the label of the layer it came from. */
export interface Sourced {
  readonly value: string;
  readonly from: string;
}

/** Layers folded into one map, later layers overriding earlier ones group by group. */
export function mergeLayers(layers: readonly Layer[]): Map<RcKey, Sourced> {
  const out = new Map<RcKey, Sourced>();
  for (const layer of layers) {
    const set = RC_KEYS.filter((k) => layer.values[k] !== undefined);
    for (const k of set) for (const g of groupOf(k)) out.delete(g);
    for (const k of set) out.set(k, { value: layer.values[k] as string, from: layer.label });
  }
  return out;
}

/** The merged values as an rc stanza (what `--save-rc-stanza` writes). */
export function toRcValues(merged: ReadonlyMap<RcKey, Sourced>): RcValues {
  const out: RcValues = {};
  for (const k of RC_KEYS) {
    const s = merged.get(k);
    if (s !== undefined) out[k] = s.value;
  }
  return out;
}

function fieldName(k: RcKey, from: string): string {
  return from === 'command line' ? FLAG_OF[k] : `${from} ${k}`;
}

function usage(field: string, message: string, hint?: string): ConfigError {
  return new ConfigError('USAGE', `${field}: ${message}`, { field, ...(hint ? { hint } : {}) });
}

export function parseSwitch(text: string, field: string): boolean {
  const t = text.trim().toLowerCase();
  if (['yes', 'true', 'on', '1', ''].includes(t)) return true;
  if (['no', 'false', 'off', '0'].includes(t)) return false;
  throw usage(field, `expected yes or no, got '${t.slice(0, 20)}'`);
}

export function parseIntIn(text: string, field: string, min: number, max: number): number {
  const t = text.trim();
  if (!/^[0-9]{1,9}$/.test(t) || Number(t) < min || Number(t) > max) {
    throw usage(field, `expected a whole number ${min}..${max}, got '${t.slice(0, 20)}'`);
  }
  return Number(t);
}

export function parseHttpUrl(text: string, field: string): URL {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw usage(field, 'not a URL', 'give an http:// or https:// URL that answers with your address');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usage(field, `only http:// and https:// URLs are supported, got ${url.protocol}`);
  }
  return url;
}

/** A hostname or an IP literal: no spaces, no URL, no port. */
export function checkHost(text: string, field = 'HOST'): string {
  const t = text.trim();
  const bare = t.startsWith('[') && t.endsWith(']') ? t.slice(1, -1) : t;
  if (bare === '' || bare.length > 253 || !/^[A-Za-z0-9_.:%-]+$/.test(bare) || bare.startsWith('-')) {
    throw usage(
      field,
      `'${t.slice(0, 60)}' is not a host name or address`,
      'give a name or an IP address, without a port (use -p PORT)',
    );
  }
  return bare;
}

/** Typed, checked settings from merged layers. */
export function resolveSettings(merged: ReadonlyMap<RcKey, Sourced>): Settings {
  const get = (k: RcKey): Sourced | undefined => merged.get(k);
  const field = (k: RcKey): string => fieldName(k, get(k)?.from ?? 'command line');
  const str = (k: RcKey): string | undefined => {
    const v = get(k)?.value;
    if (v === undefined) return undefined;
    if (v.trim() === '') throw usage(field(k), 'empty value');
    return v;
  };
  const sw = (k: RcKey): boolean => {
    const v = get(k);
    return v === undefined ? false : RC_SWITCHES.has(k) ? parseSwitch(v.value, field(k)) : true;
  };

  const host = str('host');
  const accessText = str('access');
  const cmd = get('server-cmd')?.value;
  if (accessText !== undefined && cmd !== undefined) {
    throw usage(
      get('server-cmd')?.from === 'command line' ? '--server-cmd' : field('server-cmd'),
      'a command request cannot also ask for ports (-A)',
      'the server opens what its policy for the command says; drop -A',
    );
  }
  const access = accessText === undefined ? undefined : parseAccessList(accessText, field('access'));

  let serverCmd: string | null = null;
  if (cmd !== undefined) {
    if (cmd.length === 0) throw new ConfigError('COMMAND_INVALID', `${field('server-cmd')}: empty command`);
    const n = Buffer.byteLength(cmd, 'utf8');
    if (n > COMMAND_MAX_BYTES) {
      throw new ConfigError(
        'COMMAND_INVALID',
        `${field('server-cmd')}: ${n} bytes, at most ${COMMAND_MAX_BYTES}`,
      );
    }
    if (/[\u0000-\u001f\u007f]/.test(cmd)) {
      throw new ConfigError('COMMAND_INVALID', `${field('server-cmd')}: control characters are not allowed`);
    }
    serverCmd = cmd;
  }

  const sourceKeys = (['allow-ip', 'source-any', 'resolve-ip-http'] as const).filter((k) =>
    k === 'source-any' ? sw(k) : get(k) !== undefined,
  );
  if (sourceKeys.length > 1) {
    throw usage(sourceKeys.map((k) => field(k)).join(' and '), 'choose one of -a IP, -s and -R URL');
  }
  let source: SourceChoice = { kind: 'auto' };
  const allow = str('allow-ip');
  const resolveUrl = str('resolve-ip-http');
  if (allow !== undefined)
    source = { kind: 'ip', address: unmapV4(parseAddress(allow.trim(), field('allow-ip'))) };
  else if (sw('source-any')) source = { kind: 'any' };
  else if (resolveUrl !== undefined) {
    const url = parseHttpUrl(resolveUrl, field('resolve-ip-http'));
    if (url.protocol === 'http:' && !sw('insecure-resolve')) {
      throw usage(
        field('resolve-ip-http'),
        'plain http:// is refused: anyone on the path could answer with their own address, and the knock would open the port for them',
        'use an https:// URL; or, accepting that risk, add --insecure-resolve (spa then warns every time)',
      );
    }
    source = { kind: 'http', url };
  }

  const v4 = sw('ipv4');
  const v6 = sw('ipv6');
  if (v4 && v6) throw usage(`${field('ipv4')} and ${field('ipv6')}`, 'choose one');

  const port = str('server-port');
  const fw = str('fw-timeout');
  if (fw !== undefined && serverCmd !== null) {
    throw usage(field('fw-timeout'), 'a command request carries no firewall timeout');
  }
  const ct = str('connect-timeout');

  const username = str('username');
  if (username !== undefined && !USERNAME_RE.test(username)) {
    throw new ConfigError('USERNAME_INVALID', `${field('username')}: must match ${USERNAME_RE.source}`);
  }

  // gateway mode: -N HOST:PORT, or --nat-local (the gateway's own port: -N local:PORT, or -A's port)
  const natText = str('nat-access');
  const natLocal = sw('nat-local');
  const randPort = sw('rand-port');
  let forward: ForwardTarget | null = null;
  if (natText !== undefined) forward = parseForwardTarget(natText, field('nat-access'));
  if (natLocal) {
    if (forward && forward.host !== 'local') {
      throw usage(
        `${field('nat-local')} and ${field('nat-access')}`,
        'choose one: forward to the gateway itself, or to HOST:PORT',
      );
    }
    const port = forward?.port ?? access?.[0]?.port;
    if (port === undefined)
      throw usage(field('nat-local'), 'say which local port: -N local:PORT or -A tcp/PORT');
    forward = { host: 'local', port };
  }
  if (forward) {
    if (serverCmd !== null)
      throw usage(field(natLocal ? 'nat-local' : 'nat-access'), 'a command request cannot forward');
    if (access && access.length !== 1) {
      throw usage(field('access'), 'a forwarding request names one external port (one -A entry)');
    }
  }
  if (randPort && !forward) {
    throw usage(
      field('rand-port'),
      'a random external port needs a forwarding request',
      'add -N HOST:PORT or --nat-local',
    );
  }
  // a range only matters with --rand-port; an rc [default] may name it for every gateway stanza
  const rangeText = str('rand-port-range');
  const randPortRange =
    rangeText === undefined ? DEFAULT_RANDOM_PORTS : parsePortRange(rangeText, field('rand-port-range'));
  if (rangeText !== undefined && !randPort && get('rand-port-range')?.from === 'command line') {
    throw usage(field('rand-port-range'), 'a port range needs --rand-port');
  }
  const retriesText = str('retries');
  const retries =
    retriesText === undefined ? null : parseIntIn(retriesText, field('retries'), 0, RETRIES_MAX);
  if (retries !== null && serverCmd !== null) {
    throw usage(field('retries'), 'a signed reply answers access knocks only, not --server-cmd');
  }

  return {
    forward,
    randPort,
    randPortRange,
    retries,
    host: host === undefined ? undefined : checkHost(host, field('host')),
    access,
    source,
    serverPort: port === undefined ? DEFAULT_SPA_PORT : parseIntIn(port, field('server-port'), 1, 65535),
    family: v4 ? 4 : v6 ? 6 : undefined,
    gpgRecv: str('gpg-recv'),
    gpgSign: str('gpg-sign'),
    gpgHomeDir: str('gpg-home-dir'),
    gpgExe: str('gpg-exe') ?? 'gpg',
    keyPassphraseFile: str('key-passphrase-file'),
    username,
    fwTimeout: fw === undefined ? 0 : parseIntIn(fw, field('fw-timeout'), 0, TIMEOUT_MAX_SECONDS),
    serverCmd,
    connectTimeout:
      ct === undefined
        ? DEFAULT_CONNECT_TIMEOUT
        : parseIntIn(ct, field('connect-timeout'), 1, CONNECT_TIMEOUT_MAX),
  };
}
