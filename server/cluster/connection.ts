/**
 * One connection to the fleet's Redis (ioredis), set up so that a knock never waits longer than
 * the bound the admin chose, and so that it comes back by itself:
 *  - `commandTimeout` and `connectTimeout` are `timeoutMs`: every call resolves or fails within it;
 *  - `enableOfflineQueue: false`, `maxRetriesPerRequest: 0`: while the link is down a call fails at
 *    once instead of queueing, and a call in flight when the link drops fails instead of being
 *    sent again later (its outcome is unknown, so the caller treats it as a failure);
 *  - reconnects forever, 50 ms after the first failure and at most every 500 ms after that, so
 *    service resumes within about half a second of Redis coming back.
 * The state (`up`, `down`, `connecting`), since when, and the last error (message only) are kept
 * for `spad status`; a change of state is reported once through `onState`.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { ConfigError } from '../../protocol/errors.js';
import { readCheckedFile } from '../../keyring/file-safety.js';
import type { ClusterSettings } from './settings.js';

export type LinkState = 'connecting' | 'up' | 'down';

export interface LinkStatus {
  url: string;
  state: LinkState;
  /** ms since the epoch of the last change of state. */
  since: number;
  lastError: string | null;
}

/** Reconnect delay after `times` failed attempts, ms. */
export function reconnectDelay(times: number): number {
  return Math.min(50 * times, 500);
}

/** The ioredis options for these settings; reads the password and CA files (secrets checked). */
export async function redisOptions(s: ClusterSettings): Promise<RedisOptions> {
  let password: string | undefined;
  if (s.passwordFile) {
    const f = await readCheckedFile(s.passwordFile, {
      what: 'cluster password file',
      secret: true,
      maxBytes: 4096,
    });
    if (f === null)
      throw new ConfigError('IO', `cannot read cluster password file ${s.passwordFile}: no such file`);
    password = f.data.toString('utf8').replace(/\r?\n$/, '');
    if (!password) throw new ConfigError('USAGE', `cluster password file ${s.passwordFile} is empty`);
  }
  let ca: string | undefined;
  if (s.caFile) {
    try {
      ca = await readFile(s.caFile, 'utf8');
    } catch (cause) {
      throw new ConfigError('IO', `cannot read cluster CA file ${s.caFile}: ${(cause as Error).message}`, {
        cause,
      });
    }
  }
  return {
    host: s.host,
    port: s.port,
    db: s.db,
    ...(s.username ? { username: s.username } : {}),
    ...(password !== undefined ? { password } : {}),
    // TLS checks the certificate against the host (an IP literal needs an IP SAN); SNI only for names
    ...(s.tls ? { tls: { ...(isIP(s.host) ? {} : { servername: s.host }), ...(ca ? { ca } : {}) } } : {}),
    connectTimeout: s.timeoutMs,
    commandTimeout: s.timeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: reconnectDelay,
    lazyConnect: true,
    // no CLIENT SETINFO round trips at connect (older servers refuse it), no ready check delay
    enableReadyCheck: false,
  };
}

export class ClusterLink {
  readonly redis: Redis;
  private current: LinkStatus;
  private closed = false;

  constructor(
    readonly settings: ClusterSettings,
    options: RedisOptions,
    private readonly onState: (s: LinkStatus) => void = () => {},
  ) {
    this.current = { url: settings.url, state: 'connecting', since: Date.now(), lastError: null };
    this.redis = new Redis(options);
    this.redis.on('ready', () => this.set('up', null));
    this.redis.on('error', (err: Error) => this.set('down', err.message));
    this.redis.on('close', () => this.set('down', this.current.lastError ?? 'connection closed'));
  }

  /** Starts connecting; resolves once up or after the first failure (never rejects). */
  async connect(): Promise<void> {
    await this.redis.connect().catch(() => {});
  }

  get status(): LinkStatus {
    return { ...this.current };
  }

  get up(): boolean {
    return this.current.state === 'up';
  }

  private set(state: LinkState, error: string | null): void {
    if (this.closed) return;
    if (error !== null) this.current.lastError = error;
    if (state === this.current.state) return;
    this.current = { ...this.current, state, since: Date.now() };
    this.onState(this.status);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.redis.disconnect(false);
  }
}

/** Opens a link (reads the secret files first: their errors refuse to start). */
export async function openLink(s: ClusterSettings, onState?: (st: LinkStatus) => void): Promise<ClusterLink> {
  const link = new ClusterLink(s, await redisOptions(s), onState);
  await link.connect();
  return link;
}
