/**
 * spad configuration: defaults < `--config FILE` (JSON) < command-line flags. Validated in full
 * before anything starts, so a broken configuration refuses to start with one clear line.
 *
 * Config file keys (all optional): interface, udp_server, udp_host, port, firewall, protect,
 * always_allow, max_skew, audit_log, remove_on_exit, passphrase_file, table, rate_burst,
 * rate_per_second, max_commands_per_user, verifier_user, cluster, cluster_fail,
 * cluster_timeout_ms, cluster_password_file, cluster_ca_file (server/cluster/settings.ts),
 * gateway (`{ "internal": [CIDR...],
 * "random_ports": "20000-29999" }`: forwarding grants, SPEC.md §9.6).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { type PortSpec, parseAccessList } from '../protocol/access.js';
import { formatCidr, parseCidr } from '../protocol/address.js';
import { ConfigError, isSpaError } from '../protocol/errors.js';
import { type PortRange, parsePortRange } from '../protocol/forward.js';
import { type ClusterSettings, resolveClusterSettings } from './cluster/settings.js';
import { DEFAULT_MAX_SKEW_SECONDS, DEFAULT_RANDOM_PORTS, DEFAULT_SPA_PORT } from '../protocol/limits.js';

export interface ServerConfig {
  stateDir: string;
  capture: { mode: 'pcap'; device: string } | { mode: 'udp'; host: string };
  port: number;
  firewall: 'nftables' | 'iptables';
  protect: PortSpec[];
  alwaysAllow: string[];
  maxSkewSeconds: number;
  auditLog: string | null;
  removeOnExit: boolean;
  passphraseFile: string | null;
  table: string;
  maxCommandsPerUser: number;
  verbose: boolean;
  socketPath: string;
  replayFile: string;
  /** Account of the unprivileged verifier and capture processes; null = `spa`, else `nobody`. */
  verifierUser: string | null;
  /** The fleet's Redis (`--cluster`), or null for a gateway on its own. */
  cluster: ClusterSettings | null;
  /** Gateway mode: the internal networks forwarding protects and grants lead to; null = off. */
  gateway: { internal: string[]; randomPorts: { min: number; max: number } } | null;
}

const fileSchema = z.strictObject({
  interface: z.string().min(1).optional(),
  udp_server: z.boolean().optional(),
  udp_host: z.string().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  firewall: z.enum(['nftables', 'iptables']).optional(),
  protect: z.union([z.string(), z.array(z.string())]).optional(),
  always_allow: z.array(z.string()).optional(),
  max_skew: z.number().int().min(5).max(3600).optional(),
  audit_log: z.string().nullable().optional(),
  remove_on_exit: z.boolean().optional(),
  passphrase_file: z.string().nullable().optional(),
  table: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,15}$/)
    .optional(),
  // accepted for older config files; the fair queue (server/fairqueue.ts) replaced these limits
  rate_burst: z.number().int().min(1).max(10_000).optional(),
  rate_per_second: z.number().min(0.01).max(10_000).optional(),
  max_commands_per_user: z.number().int().min(1).max(64).optional(),
  verifier_user: z
    .string()
    .regex(/^[a-z_][a-z0-9_.-]{0,31}$/)
    .optional(),
  cluster: z.string().min(1).max(1024).nullable().optional(),
  cluster_fail: z.enum(['closed', 'open']).optional(),
  cluster_timeout_ms: z.number().int().optional(),
  cluster_password_file: z.string().min(1).nullable().optional(),
  cluster_ca_file: z.string().min(1).nullable().optional(),
  gateway: z
    .strictObject({
      internal: z.array(z.string()).min(1).max(256),
      random_ports: z
        .string()
        .regex(/^[1-9][0-9]{0,4}-[1-9][0-9]{0,4}$/, 'expected LOW-HIGH, e.g. 20000-29999')
        .optional(),
    })
    .optional(),
});
export type ConfigFile = z.infer<typeof fileSchema>;

/** The keys a config file may have (README.md lists them; scripts/check-docs.ts compares). */
export const CONFIG_FILE_KEYS: readonly string[] = Object.keys(fileSchema.shape);

/** Flags as commander gives them (strings and booleans, all optional). */
export interface ServerFlags {
  stateDir?: string;
  interface?: string;
  udpServer?: boolean;
  port?: string;
  firewall?: string;
  protect?: string;
  config?: string;
  verbose?: boolean;
  auditLog?: string;
  passphraseFile?: string;
  verifierUser?: string;
  cluster?: string;
}

export function readConfigFile(path: string): ConfigFile {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new ConfigError('CONFIG_INVALID', `config ${path}: ${(cause as Error).message}`, { cause });
  }
  const r = fileSchema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0];
    const at = issue?.path.join('.') || '(top)';
    throw new ConfigError('CONFIG_INVALID', `config ${path}: ${at}: ${issue?.message ?? 'invalid'}`, {
      field: at,
    });
  }
  return r.data;
}

function portNumber(text: string): number {
  if (!/^[1-9][0-9]{0,4}$/.test(text) || Number(text) > 65535) {
    throw new ConfigError('USAGE', `--port: expected 1..65535, got '${text.slice(0, 20)}'`, {
      field: 'port',
    });
  }
  return Number(text);
}

export function resolveConfig(flags: ServerFlags, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const file = flags.config ? readConfigFile(flags.config) : {};
  const stateDir = flags.stateDir ?? env.SPA_STATE_DIR ?? '/etc/spa';
  const udp = flags.udpServer ?? file.udp_server ?? false;
  const device = flags.interface ?? file.interface;
  if (udp && flags.interface) {
    throw new ConfigError('USAGE', '--interface and --udp-server cannot be used together', {
      field: 'interface',
    });
  }
  if (!udp && !device) {
    throw new ConfigError(
      'USAGE',
      'no capture given: use --interface IF (pcap, e.g. eth0 or any) or --udp-server',
      {
        field: 'interface',
        hint: 'pcap sees knocks even while the firewall drops the SPA port; --udp-server needs the port open',
      },
    );
  }
  const fw = flags.firewall ?? file.firewall ?? 'nftables';
  if (fw !== 'nftables' && fw !== 'iptables') {
    throw new ConfigError('USAGE', `--firewall: expected nftables or iptables, got '${fw.slice(0, 20)}'`, {
      field: 'firewall',
    });
  }
  const protectText =
    flags.protect ?? (Array.isArray(file.protect) ? file.protect.join(',') : file.protect) ?? 'tcp/22';
  const alwaysAllow = (file.always_allow ?? []).map((c) => {
    try {
      return formatCidr(parseCidr(c, 'always_allow'));
    } catch (e) {
      throw isSpaError(e)
        ? new ConfigError('CONFIG_INVALID', `config: ${e.message}`, { field: 'always_allow' })
        : e;
    }
  });
  const clusterUrl = flags.cluster ?? file.cluster ?? null;
  const cluster = clusterUrl
    ? resolveClusterSettings(
        {
          url: clusterUrl,
          fail: file.cluster_fail,
          timeoutMs: file.cluster_timeout_ms,
          passwordFile: file.cluster_password_file,
          caFile: file.cluster_ca_file,
        },
        stateDir,
      )
    : null;
  let gateway: ServerConfig['gateway'] = null;
  if (file.gateway) {
    const internal = file.gateway.internal.map((c) => {
      try {
        const cidr = parseCidr(c, 'gateway.internal');
        if (cidr.prefix < 1)
          throw new ConfigError('CONFIG_INVALID', 'gateway.internal: /0 is not an internal network');
        return formatCidr(cidr);
      } catch (e) {
        throw isSpaError(e)
          ? new ConfigError('CONFIG_INVALID', `config: ${e.message}`, { field: 'gateway' })
          : e;
      }
    });
    let randomPorts: PortRange = DEFAULT_RANDOM_PORTS;
    try {
      if (file.gateway.random_ports !== undefined)
        randomPorts = parsePortRange(file.gateway.random_ports, 'gateway.random_ports');
    } catch {
      throw new ConfigError('CONFIG_INVALID', 'config: gateway.random_ports: LOW-HIGH within 1..65535', {
        field: 'gateway',
      });
    }
    gateway = { internal, randomPorts };
  }
  return {
    gateway,
    stateDir,
    capture: udp ? { mode: 'udp', host: file.udp_host ?? '::' } : { mode: 'pcap', device: device ?? 'any' },
    port: flags.port ? portNumber(flags.port) : (file.port ?? DEFAULT_SPA_PORT),
    firewall: fw,
    protect: parseAccessList(protectText, '--protect'),
    alwaysAllow,
    maxSkewSeconds: file.max_skew ?? DEFAULT_MAX_SKEW_SECONDS,
    auditLog: flags.auditLog ?? file.audit_log ?? null,
    removeOnExit: file.remove_on_exit ?? false,
    passphraseFile: flags.passphraseFile ?? file.passphrase_file ?? null,
    table: file.table ?? 'spa',
    maxCommandsPerUser: file.max_commands_per_user ?? 2,
    verbose: flags.verbose ?? false,
    socketPath: join(stateDir, 'spad.sock'),
    replayFile: join(stateDir, 'replay.jsonl'),
    verifierUser: flags.verifierUser ?? file.verifier_user ?? null,
    cluster,
  };
}
