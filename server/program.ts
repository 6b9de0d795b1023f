/**
 * `spad`: the daemon, and the control commands that talk to a running one.
 *   spad --interface IF | --udp-server [--port 62201] [--firewall nftables|iptables]
 *        [--protect tcp/22,...] [--config FILE] [--state-dir DIR] [--cluster URL] [-f] [-v] [--check]
 *   spad status [--json] | reload | fw-list [--json] | fw-flush [--yes]
 *   spad install-service [daemon flags] [--unit-file F] [--print]   (install-service.ts)
 */
import { setFlagsFromString } from 'node:v8';
import { Command, Option } from 'commander';
import { printError } from '../cli/conventions.js';
import { displaySafe, displaySafeJson } from '../protocol/display.js';
import { ConfigError } from '../protocol/errors.js';
import { resolveConfig, type ServerFlags } from './config.js';
import { callControl } from './control.js';
import { type GrantStatus, grantLine, type ListedGrant, statusGrants } from './grants.js';
import type { ProcessInfo } from './privdrop.js';

function stateDirOption(): Option {
  return new Option(
    '--state-dir <dir>',
    'state directory (keys, keyring, control socket); env SPA_STATE_DIR',
  ).default(undefined, '/etc/spa');
}

function socketOf(opts: { stateDir?: string }): string {
  return resolveConfig({ stateDir: opts.stateDir, udpServer: true }).socketPath;
}

/** Text escaped line by line, JSON with unsafe characters as \u escapes (protocol/display.ts). */
function print(x: unknown): void {
  const text =
    typeof x === 'string'
      ? x
          .split('\n')
          .map((l) => displaySafe(l, { backslash: false }))
          .join('\n')
      : displaySafeJson(x, 2);
  process.stdout.write(`${text}\n`);
}

/** A process as `spad status` reports it (privdrop.ts reads it from /proc); any role name. */
type ProcessStatus = Omit<ProcessInfo, 'role'> & { role: string };

/** One line per spad process: role, pid, uid and capability sets (privilege separation). */
function processLines(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return (list as ProcessStatus[]).map(
    (p) =>
      `  ${p.role.padEnd(8)} pid ${p.pid}  uid ${p.uid ?? '?'}  CapEff ${p.capEff ?? '?'}  CapPrm ${p.capPrm ?? '?'}  CapBnd ${p.capBnd ?? '?'}  NoNewPrivs ${p.noNewPrivs === null ? '?' : p.noNewPrivs ? 1 : 0}`,
  );
}

/** `spad status` lines for the cluster, or none for a gateway on its own. */
function clusterLines(c: unknown): string[] {
  if (!c || typeof c !== 'object') return [];
  const x = c as {
    url?: string;
    state?: string;
    since?: number;
    lastError?: string | null;
    fail?: string;
    timeoutMs?: number;
    replay?: Record<string, number>;
    keyring?: { revision?: number; syncedAt?: number | null; error?: string | null } | null;
  };
  const ago =
    typeof x.since === 'number' ? `${Math.max(0, Math.round((Date.now() - x.since) / 1000))}s` : '?';
  const counts = Object.entries(x.replay ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const lines = [
    `cluster ${x.url} ${x.state} for ${ago}  cluster_fail ${x.fail}  timeout ${x.timeoutMs} ms` +
      (x.state !== 'up' && x.lastError ? `  last error: ${x.lastError}` : ''),
    `cluster replay ${counts || '(none)'}`,
  ];
  if (x.keyring) {
    lines.push(
      `cluster keyring revision ${x.keyring.revision ?? 0}` +
        (x.keyring.error ? `  keeping the last good keyring: ${x.keyring.error}` : ''),
    );
  }
  return lines;
}

export function buildProgram(): Command {
  const program = new Command('spad')
    .description('Single Packet Authorization daemon: opens the firewall for verified OpenPGP knocks')
    .addOption(stateDirOption())
    .option('-i, --interface <if>', 'capture knocks with libpcap on this interface (or any)')
    .option('--udp-server', 'receive knocks on a plain UDP socket instead of pcap')
    .option('-p, --port <port>', 'UDP port of knocks', undefined)
    .addOption(new Option('--firewall <kind>', 'firewall backend').choices(['nftables', 'iptables']))
    .option('--protect <list>', 'ports to keep closed unless granted, e.g. tcp/22,tcp/443 (default tcp/22)')
    .option('--config <file>', 'JSON configuration file (flags override it)')
    .option('--audit-log <file>', 'write the JSON audit log here instead of stdout')
    .option('--passphrase-file <file>', 'passphrase of server.key, if spa-keys init protected it')
    .option('--cluster <url>', 'share replay record and keyring with other gateways: redis://HOST:PORT[/DB]')
    .option(
      '-f, --foreground',
      'accepted for fwknopd habits; changes nothing, spad never goes to the background',
    )
    .option('--verifier-user <user>', 'account of the unprivileged verifier (default spa, else nobody)')
    .option('--check', 'validate configuration, server key and keyring, then exit')
    .option('-v, --verbose', 'also log the counters by reason, once a second when they changed')
    .action(async (flags: ServerFlags & { check?: boolean; foreground?: boolean }) => {
      const cfg = resolveConfig(flags);
      if (flags.check) {
        const { checkSetup } = await import('./daemon.js');
        const r = await checkSetup(cfg);
        print(
          `spad: ok: server key ${r.fingerprint}, ${r.users.count} enrolled key(s), protect ${flags.protect ?? 'tcp/22'}`,
        );
        return;
      }
      if (process.getuid?.() !== 0) {
        throw new ConfigError('USAGE', 'spad must run as root (firewall changes and packet capture)');
      }
      // from here on V8 optimizes nothing in this process (v8-flags.ts says why)
      const { NO_OPTIMIZER } = await import('./v8-flags.js');
      setFlagsFromString(NO_OPTIMIZER);
      const { startDaemon } = await import('./daemon.js');
      const { createCommandRunner } = await import('./commands.js');
      const daemon = await startDaemon(cfg, {
        commands: (audit) =>
          createCommandRunner({ audit, maxPerUser: cfg.maxCommandsPerUser, firewall: () => daemon.firewall }),
      });
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          daemon.stop().then(resolve, (err: unknown) => {
            printError(err);
            resolve();
          });
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });

  program
    .command('status')
    .description('show uptime, counters by reason and active grants of the running daemon')
    .addOption(stateDirOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { stateDir?: string; json?: boolean }, cmd: Command) => {
      const opts = { ...cmd.parent?.opts(), ...o } as { stateDir?: string; json?: boolean };
      const s = (await callControl(socketOf(opts), 'status')) as Record<string, unknown>;
      if (opts.json) return print(s);
      const grants = (s.grants as GrantStatus[]) ?? [];
      const counters = Object.entries((s.counters as Record<string, number>) ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      print(
        [
          `uptime ${s.uptimeSeconds}s  server ${s.serverFingerprint}`,
          `capture ${s.capture} port ${s.port}  firewall ${s.firewall}  protect ${s.protect}  users ${s.users}`,
          `processes (verifier user ${s.verifierUser ?? '-'}, restarts ${s.verifierRestarts ?? 0})`,
          ...processLines(s.processes),
          `counters ${counters || '(none)'}`,
          ...clusterLines(s.cluster),
          `grants ${grants.length}`,
          ...grants.map((g) => `  ${grantLine(g)}`),
        ].join('\n'),
      );
    });

  program
    .command('reload')
    .description('re-read the keyring now (also done on SIGHUP and when keyring.json changes)')
    .addOption(stateDirOption())
    .action(async (o: { stateDir?: string }, cmd: Command) => {
      const r = (await callControl(socketOf({ ...cmd.parent?.opts(), ...o }), 'reload')) as { users: number };
      print(`spad: reloaded: ${r.users} enrolled key(s)`);
    });

  program
    .command('fw-list')
    .description('list active grants, forwarding grants included')
    .addOption(stateDirOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { stateDir?: string; json?: boolean }, cmd: Command) => {
      const opts = { ...cmd.parent?.opts(), ...o } as { stateDir?: string; json?: boolean };
      // JSON turned an infinite expiry (no timeout) into null
      const list = (await callControl(socketOf(opts), 'fw-list')) as Array<
        Omit<ListedGrant, 'expiresAt'> & { expiresAt: number | null }
      >;
      if (opts.json) return print(list);
      if (list.length === 0) return print('no active grants');
      for (const g of statusGrants(list, Date.now())) print(grantLine(g));
    });

  program
    .command('fw-flush')
    .description('remove every active grant, forwarding grants included (protections stay)')
    .addOption(stateDirOption())
    .option('--yes', 'do not ask for confirmation')
    .action(async (o: { stateDir?: string; yes?: boolean }, cmd: Command) => {
      const opts = { ...cmd.parent?.opts(), ...o } as { stateDir?: string; yes?: boolean };
      if (!opts.yes) {
        if (!process.stdin.isTTY) {
          throw new ConfigError('NOT_CONFIRMED', 'fw-flush needs confirmation', {
            hint: 'pass --yes to flush without a terminal',
          });
        }
        const { confirm } = await import('@inquirer/prompts');
        if (!(await confirm({ message: 'Remove every active grant?', default: false }))) {
          throw new ConfigError('NOT_CONFIRMED', 'fw-flush not confirmed');
        }
      }
      await callControl(socketOf(opts), 'fw-flush');
      print('spad: all grants removed');
    });

  program
    .command('install-service')
    .description('write the systemd unit for this installation, create the spa user and the state dir')
    .addOption(stateDirOption())
    .option('-i, --interface <if>', 'the daemon flag to put in the unit')
    .option('--udp-server', 'the daemon flag to put in the unit')
    .option('-p, --port <port>', 'the daemon flag to put in the unit')
    .addOption(
      new Option('--firewall <kind>', 'the daemon flag to put in the unit').choices(['nftables', 'iptables']),
    )
    .option('--protect <list>', 'the daemon flag to put in the unit')
    .option('--config <file>', 'the daemon flag to put in the unit')
    .option('--audit-log <file>', 'the daemon flag to put in the unit (its directory is made writable)')
    .option('--passphrase-file <file>', 'the daemon flag to put in the unit')
    .option('--cluster <url>', 'the daemon flag to put in the unit')
    .option('-v, --verbose', 'the daemon flag to put in the unit')
    .option('--unit-file <file>', 'where to write the unit', '/etc/systemd/system/spad.service')
    .option('--print', 'print the unit on stdout and change nothing')
    .action(async (o: ServerFlags & { unitFile: string; print?: boolean }, cmd: Command) => {
      const given = (x: object): object =>
        Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined));
      const opts = { ...given(cmd.parent?.opts() ?? {}), ...given(o) } as typeof o;
      const { installService, renderUnit, serviceSpec } = await import('./install-service.js');
      const spec = serviceSpec(opts);
      if (opts.print) return void process.stdout.write(renderUnit(spec));
      if (process.getuid?.() !== 0) {
        throw new ConfigError(
          'USAGE',
          'install-service must run as root (it creates a user and writes the unit)',
          {
            hint: 'or see the unit first: spad install-service --print ...',
          },
        );
      }
      for (const line of await installService({ spec, unitFile: opts.unitFile })) print(line);
    });
  return program;
}
