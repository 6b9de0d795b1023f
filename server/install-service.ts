/**
 * `spad install-service`: what a Linux admin needs to run an installed spad under systemd.
 * - the unit file, written for the paths this spad was installed at (node and dist/server/cli.js
 *   by absolute path: no PATH lookup at boot), with the daemon flags given here;
 * - the unprivileged account of the verifier and capture processes (`spa`, a system user with
 *   no home and no login shell) when it is missing;
 * - the state directory, mode 0700;
 * then the `systemctl` line to run. Nothing is started here.
 *
 * The hardening is the strongest that still lets spad work; each choice is explained next to it
 * in `renderUnit` and in SECURITY.md "The systemd unit". Every value that reaches the unit is
 * checked (no control characters: a newline would add a directive) and quoted for systemd.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../protocol/errors.js';
import { resolveConfig, type ServerFlags } from './config.js';

export const DEFAULT_UNIT_FILE = '/etc/systemd/system/spad.service';
export const DEFAULT_SERVICE_USER = 'spa';
const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * Capabilities spad keeps (CapabilityBoundingSet), each with the reason it is needed. root
 * without CAP_DAC_OVERRIDE still owns its own files in the state directory.
 */
export const CAPABILITIES: ReadonlyArray<readonly [cap: string, why: string]> = [
  ['CAP_NET_ADMIN', 'nftables/iptables changes (netlink)'],
  ['CAP_NET_RAW', 'libpcap packet socket; kept as the only ambient capability of the capture child'],
  ['CAP_SETUID', 'setpriv/prlimit switch to the verifier user and to run-as users of commands'],
  ['CAP_SETGID', 'the same, for groups (setgroups, setresgid)'],
  ['CAP_SETPCAP', 'setpriv drops the bounding set of the verifier and capture child'],
  ['CAP_KILL', 'signal the verifier and commands, which run as other users'],
  ['CAP_CHOWN', 'hand the verifier its own directory <state-dir>/verifier'],
  ['CAP_FOWNER', 'chmod 0700 that directory again once the verifier user owns it'],
];

export interface ServiceSpec {
  /** Absolute path of the node binary that runs spad. */
  node: string;
  /** Absolute path of the installed `dist/server/cli.js`. */
  spad: string;
  stateDir: string;
  /** Daemon flags (after --state-dir), e.g. ['--interface', 'eth0', '--protect', 'tcp/22']. */
  daemonArgs: readonly string[];
  /** Writable paths besides the state directory (an --audit-log file's directory). */
  readWritePaths?: readonly string[];
}

/** One argument quoted for a systemd command line or path list ("..." with \ " $ % escaped). */
export function systemdQuote(arg: string, field = 'argument'): string {
  if (/[\u0000-\u001f\u007f]/.test(arg)) {
    throw new ConfigError('CONFIG_INVALID', `${field}: control characters cannot go into a unit file`, {
      field,
    });
  }
  if (/^[A-Za-z0-9_@+=:,./-]+$/.test(arg)) return arg;
  return `"${arg
    .replace(/[\\"]/g, (c) => `\\${c}`)
    .replace(/\$/g, '$$$$')
    .replace(/%/g, '%%')}"`;
}

/** An absolute path for the unit, plain characters only (paths are not quoted the same way everywhere). */
function unitPath(path: string, field: string): string {
  if (!isAbsolute(path) || !/^[A-Za-z0-9_@+=:,./-]+$/.test(path)) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `${field}: must be an absolute path of letters, digits and _@+=:,./- for the unit file`,
      { field },
    );
  }
  return path;
}

/**
 * The unit for these daemon flags and this installation: the flags are validated as spad itself
 * would (resolveConfig), file paths among them made absolute, and an audit log's directory made
 * writable.
 */
export function serviceSpec(flags: ServerFlags, env: NodeJS.ProcessEnv = process.env): ServiceSpec {
  const cfg = resolveConfig(flags, env);
  const args: string[] = [];
  if (flags.interface !== undefined) args.push('--interface', flags.interface);
  if (flags.udpServer) args.push('--udp-server');
  if (flags.port !== undefined) args.push('--port', String(cfg.port));
  if (flags.firewall !== undefined) args.push('--firewall', cfg.firewall);
  if (flags.protect !== undefined) args.push('--protect', flags.protect);
  if (flags.config !== undefined) args.push('--config', resolve(flags.config));
  if (flags.auditLog !== undefined) args.push('--audit-log', resolve(flags.auditLog));
  if (flags.passphraseFile !== undefined) args.push('--passphrase-file', resolve(flags.passphraseFile));
  // the URL as resolveConfig checked and normalized it (never a password)
  if (flags.cluster !== undefined && cfg.cluster) args.push('--cluster', cfg.cluster.url);
  if (flags.verbose) args.push('--verbose');
  return {
    node: process.execPath,
    spad: realpathSync(fileURLToPath(new URL('./cli.js', import.meta.url))),
    stateDir: resolve(cfg.stateDir),
    daemonArgs: args,
    readWritePaths: cfg.auditLog ? [dirname(resolve(cfg.auditLog))] : [],
  };
}

/** The unit file text. */
export function renderUnit(spec: ServiceSpec): string {
  const node = unitPath(spec.node, 'node');
  const spad = unitPath(spec.spad, 'spad');
  const stateDir = unitPath(spec.stateDir, 'state-dir');
  const args = spec.daemonArgs.map((a) => systemdQuote(a, 'daemon flag')).join(' ');
  const rw = [stateDir, ...(spec.readWritePaths ?? []).map((p) => unitPath(p, 'read-write path'))];
  const base = `${node} ${spad} --state-dir ${stateDir}`;
  return `# Written by \`spad install-service\`; run it again to change the flags or after moving node.
# Hardening: SECURITY.md "The systemd unit" says what each line is for and what was verified.
[Unit]
Description=spa Single Packet Authorization daemon
Documentation=man:spad(8)
# protections go in before the first packet is read; start once the network is configured
Wants=network-online.target
After=network-online.target nftables.service

[Service]
Type=simple
ExecStartPre=${base} --check ${args}
ExecStart=${base} ${args}
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=1
# root, but only with these capabilities:${CAPABILITIES.map(([c, why]) => `\n#   ${c}: ${why}`).join('')}
User=root
CapabilityBoundingSet=${CAPABILITIES.map(([c]) => c).join(' ')}
AmbientCapabilities=
# setpriv and prlimit gain nothing through exec; no-new-privs only forbids gaining
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${rw.join(' ')}
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# V8 compiles JavaScript to machine code at run time: node aborts when W+X pages are refused
# (checked with PR_SET_MDWE). node --jitless runs under it, several times slower.
MemoryDenyWriteExecute=no
SystemCallArchitectures=native
# the service set holds what node, libpcap, nft/iptables, setpriv and prlimit call; anything
# else fails with EPERM instead of killing spad
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET
UMask=0077

[Install]
WantedBy=multi-user.target
`;
}

export interface InstallDeps {
  userExists(name: string): Promise<boolean>;
  createUser(name: string): Promise<void>;
}

export interface InstallOptions {
  spec: ServiceSpec;
  unitFile: string;
  /** The verifier's account, created when missing (spad runs its verifier as `spa`, else `nobody`). */
  user?: string;
}

/** getent/useradd, the real host. */
export const hostDeps: InstallDeps = {
  userExists: (name) =>
    new Promise((resolve) => {
      execFile('getent', ['passwd', name], (err) => resolve(!err));
    }),
  createUser: (name) =>
    new Promise((resolve, reject) => {
      execFile(
        'useradd',
        ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name],
        (err, _out, stderr) =>
          err
            ? reject(
                new ConfigError('IO', `useradd ${name} failed: ${String(stderr).trim() || err.message}`, {
                  hint: `create it by hand: useradd --system --no-create-home --shell /usr/sbin/nologin ${name}`,
                }),
              )
            : resolve(),
      );
    }),
};

/** Writes the unit, creates the account and the state directory; returns the lines to print. */
export async function installService(opts: InstallOptions, deps: InstallDeps = hostDeps): Promise<string[]> {
  const user = opts.user ?? DEFAULT_SERVICE_USER;
  if (!USER_RE.test(user)) {
    throw new ConfigError('CONFIG_INVALID', 'user: not a valid system user name', { field: 'user' });
  }
  const unitFile = unitPath(opts.unitFile, 'unit-file');
  if (!unitFile.endsWith('.service')) {
    throw new ConfigError('CONFIG_INVALID', 'unit-file: must end in .service', { field: 'unit-file' });
  }
  const text = renderUnit(opts.spec);
  const lines: string[] = [];

  if (await deps.userExists(user)) {
    lines.push(`spad: user ${user} exists`);
  } else {
    await deps.createUser(user);
    lines.push(`spad: created system user ${user} (no home, no login shell) for the verifier`);
  }

  mkdirSync(opts.spec.stateDir, { recursive: true, mode: 0o700 });
  chmodSync(opts.spec.stateDir, 0o700);
  lines.push(`spad: state directory ${opts.spec.stateDir} (mode 0700)`);

  mkdirSync(dirname(unitFile), { recursive: true });
  const tmp = `${unitFile}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o644, flag: 'wx' });
  chmodSync(tmp, 0o644);
  renameSync(tmp, unitFile);
  lines.push(`spad: wrote ${unitFile}`);
  lines.push(
    `spad: next: spa-keys init --state-dir ${opts.spec.stateDir} (once), then run:`,
    'systemctl daemon-reload && systemctl enable --now spad',
  );
  return lines;
}
