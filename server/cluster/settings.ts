/**
 * Where the fleet's Redis is and how to reach it: `spad --cluster URL` (or `cluster` in the
 * config file), `spa-keys --cluster URL`.
 *
 * URL: `redis://[USER@]HOST:PORT[/DB]`, or `rediss://...` for TLS (Redis' own schemes). A password
 * in the URL is refused: command lines are visible to every local user (`ps`), so the password
 * comes from a file checked as a secret (`cluster_password_file`, default
 * `<state-dir>/cluster.password` when it exists). The CA that signs the Redis server's
 * certificate: `cluster_ca_file`, default `<state-dir>/cluster-ca.pem` when it exists, else the
 * system's. Hosts are names or IP literals (`[::1]` for IPv6); the port is required.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../protocol/errors.js';

export const CLUSTER_FAIL_MODES = ['closed', 'open'] as const;
export type ClusterFail = (typeof CLUSTER_FAIL_MODES)[number];

/** Default bound on one Redis call (connect included), ms. */
export const DEFAULT_CLUSTER_TIMEOUT_MS = 250;
export const CLUSTER_TIMEOUT_MIN_MS = 10;
export const CLUSTER_TIMEOUT_MAX_MS = 10_000;
export const CLUSTER_PASSWORD_FILE = 'cluster.password';
export const CLUSTER_CA_FILE = 'cluster-ca.pem';
/** Every key spa writes starts with this (one fleet per Redis database). */
export const KEY_PREFIX = 'spa:';

export interface ClusterEndpoint {
  host: string;
  port: number;
  db: number;
  tls: boolean;
  username: string | null;
}

export interface ClusterSettings extends ClusterEndpoint {
  /** The URL as shown in status and logs (never holds a password). */
  url: string;
  passwordFile: string | null;
  caFile: string | null;
  timeoutMs: number;
  fail: ClusterFail;
}

const usage = (msg: string, hint?: string): ConfigError =>
  new ConfigError('USAGE', `--cluster: ${msg}`, { field: 'cluster', ...(hint ? { hint } : {}) });

/** Parses `redis://[USER@]HOST:PORT[/DB]` or `rediss://...`; refuses anything else. */
export function parseClusterUrl(text: string): ClusterEndpoint & { url: string } {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw usage(`expected redis://HOST:PORT[/DB], got '${text.slice(0, 60)}'`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw usage(`expected the redis:// or rediss:// scheme, got '${u.protocol.slice(0, 20)}'`);
  }
  if (u.password) {
    throw usage(
      'a password in the URL is visible to every local user',
      'put it in a file: cluster_password_file',
    );
  }
  if (u.search || u.hash) throw usage('no query or fragment expected');
  if (!u.hostname) throw usage('no host');
  if (!u.port) throw usage('the port is required (Redis listens on 6379 by default)');
  const path = u.pathname === '' || u.pathname === '/' ? '0' : u.pathname.slice(1);
  if (!/^(?:[0-9]|[1-9][0-9]{1,3})$/.test(path))
    throw usage(`database: expected 0..9999, got '${path.slice(0, 20)}'`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const username = u.username ? decodeURIComponent(u.username) : null;
  const tls = u.protocol === 'rediss:';
  const url = `${u.protocol}//${username ? `${encodeURIComponent(username)}@` : ''}${u.host}/${Number(path)}`;
  return { host, port: Number(u.port), db: Number(path), tls, username, url };
}

export interface ClusterInput {
  url: string;
  fail?: string | undefined;
  timeoutMs?: number | undefined;
  passwordFile?: string | null | undefined;
  caFile?: string | null | undefined;
}

/** Settings from flags/config; files default to the state dir's when they exist. */
export function resolveClusterSettings(input: ClusterInput, stateDir: string): ClusterSettings {
  const ep = parseClusterUrl(input.url);
  const fail = input.fail ?? 'closed';
  if (fail !== 'closed' && fail !== 'open') {
    throw new ConfigError(
      'CONFIG_INVALID',
      `cluster_fail: expected closed or open, got '${fail.slice(0, 20)}'`,
      {
        field: 'cluster_fail',
      },
    );
  }
  const timeoutMs = input.timeoutMs ?? DEFAULT_CLUSTER_TIMEOUT_MS;
  if (
    !Number.isInteger(timeoutMs) ||
    timeoutMs < CLUSTER_TIMEOUT_MIN_MS ||
    timeoutMs > CLUSTER_TIMEOUT_MAX_MS
  ) {
    throw new ConfigError(
      'CONFIG_INVALID',
      `cluster_timeout_ms: expected ${CLUSTER_TIMEOUT_MIN_MS}..${CLUSTER_TIMEOUT_MAX_MS}`,
      { field: 'cluster_timeout_ms' },
    );
  }
  const byDefault = (name: string): string | null => {
    const p = join(stateDir, name);
    return existsSync(p) ? p : null;
  };
  return {
    ...ep,
    fail,
    timeoutMs,
    passwordFile: input.passwordFile === undefined ? byDefault(CLUSTER_PASSWORD_FILE) : input.passwordFile,
    caFile: input.caFile === undefined ? byDefault(CLUSTER_CA_FILE) : input.caFile,
  };
}
