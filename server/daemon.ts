/**
 * spad's lifecycle, in the monitor process (root). Start-up is fail-safe and ordered:
 * configuration, server key and keyring are loaded and checked first (any error refuses to
 * start); then the firewall protections go in; only then is the first packet read, by the
 * unprivileged verifier this starts (monitor-process.ts), whose decisions the monitor verifies
 * again before acting (monitor.ts). Reload (control socket, SIGHUP, or a change to keyring.json)
 * swaps the user directory atomically in both, or keeps the last good one and says why.
 * A timer checks that our firewall table is still there and restores it if an admin removed it.
 */
import { existsSync, watch } from 'node:fs';
import type { Server } from 'node:net';
import { loadServerKey, readPassphraseFile } from '../keyring/index.js';
import { formatAccessList } from '../protocol/access.js';
import { serverIdentity } from '../protocol/envelope.js';
import type { GatewayPolicy } from '../protocol/policy.js';
import { signReply } from '../protocol/reply.js';
import { ConfigError } from '../protocol/errors.js';
import { PACKET_MAX_BYTES } from '../protocol/limits.js';
import { LANE_PER_SECOND, TRUSTED_SOURCE_MS } from './limits.js';
import { type Audit, countersReporter, createAudit } from './audit.js';
import { captureChildArgs } from './capture/child-args.js';
import { lookupAccount } from './commands.js';
import type { ServerConfig } from './config.js';
import { callControl, listenControl } from './control.js';
import { createFirewall, createForwarder, execRunner } from './firewall/index.js';
import { flushGrants, listGrants, statusGrants } from './grants.js';
import type { Firewall } from './firewall/types.js';
import { joinCluster } from './cluster/join.js';
import type { SyncResult } from './cluster/keyring.js';
import { Monitor } from './monitor.js';
import { bindReplySockets, type LaneDatagram } from './reply-socket.js';
import { VerifierSupervisor } from './monitor-process.js';
import type { UserCommandRunner } from './pipeline.js';
import { type Account, verifierAccount, verifierDir } from './privdrop.js';
import { ReplayStore } from './replay.js';
import { type LoadedUsers, loadUsers } from './users.js';
import { VerifierCounters } from './verifier-counters.js';

/** How often a gateway asks Redis for a newer keyring besides the pub/sub messages, s. */
const KEYRING_POLL_SECONDS = 5;

export interface Daemon {
  readonly monitor: Monitor;
  readonly firewall: Firewall;
  reload(): Promise<{ users: number }>;
  status(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** The server key's passphrase, from a file checked as a secret (keyring/file-safety.ts). */
async function passphraseOf(cfg: ServerConfig): Promise<string | undefined> {
  if (!cfg.passphraseFile) return undefined;
  return readPassphraseFile(cfg.passphraseFile);
}

/** Everything that can be checked without touching the network or firewall (`spad --check`). */
export async function checkSetup(cfg: ServerConfig): Promise<{ fingerprint: string; users: LoadedUsers }> {
  const key = await loadServerKey(cfg.stateDir, await passphraseOf(cfg));
  const id = await serverIdentity(key);
  const users = await loadUsers(cfg.stateDir);
  return { fingerprint: id.fingerprint, users };
}

export async function startDaemon(
  cfg: ServerConfig,
  opts: { audit?: Audit; commands?: (audit: Audit) => UserCommandRunner } = {},
): Promise<Daemon> {
  const audit = opts.audit ?? createAudit({ file: cfg.auditLog, verbose: cfg.verbose });
  if (existsSync(cfg.socketPath)) {
    const alive = await callControl(cfg.socketPath, 'status', 1000).then(
      () => true,
      () => false,
    );
    if (alive) throw new ConfigError('EXISTS', `another spad is running with state dir ${cfg.stateDir}`);
  }
  const key = await loadServerKey(cfg.stateDir, await passphraseOf(cfg));
  const identity = await serverIdentity(key);
  // checked before anything is changed or opened
  const root = process.getuid?.() === 0;
  const account: (Account & { name: string }) | null = root
    ? await verifierAccount(cfg.verifierUser, lookupAccount)
    : null;
  if (account && cfg.capture.mode === 'udp' && cfg.port < 1024) {
    throw new ConfigError('CONFIG_INVALID', `--udp-server: port ${cfg.port} is below 1024`, {
      field: 'port',
      hint: 'the verifier that binds the socket has no privilege: use a port above 1023, or pcap (--interface)',
    });
  }
  // the fleet (server/cluster/join.ts), before the keyring is loaded: it may bring a newer one
  let onKeyring: (r: SyncResult) => void = () => {};
  const cluster = cfg.cluster
    ? await joinCluster(cfg.cluster, cfg.stateDir, identity.key.toPublic(), audit, (r) => onKeyring(r))
    : null;
  const closeCluster = async (): Promise<void> => {
    await cluster?.close();
  };
  let users: LoadedUsers;
  try {
    users = await loadUsers(cfg.stateDir);
  } catch (err) {
    await closeCluster();
    throw err;
  }

  const firewall = createFirewall(cfg.firewall, {
    protect: cfg.protect,
    alwaysAllow: cfg.alwaysAllow,
    name: cfg.table,
    // pcap reads knocks before netfilter: drop the SPA port so probes get no ICMP answer
    ...(cfg.capture.mode === 'pcap' ? { stealthPort: cfg.port } : {}),
  });
  try {
    await firewall.init();
  } catch (err) {
    await closeCluster();
    throw err;
  }
  // Gateway mode: forwarding grants in a table/chains of their own (server/firewall/forward.ts).
  const forwarder = cfg.gateway
    ? createForwarder(cfg.firewall, { name: cfg.table, internal: cfg.gateway.internal }, execRunner())
    : null;
  const gateway: GatewayPolicy | null = cfg.gateway ? { randomPorts: cfg.gateway.randomPorts } : null;
  // The signed reply (SPEC.md §12) leaves from the SPA port. With pcap nothing else binds it,
  // and our own rule drops what arrives there, so this socket only ever sends. With the UDP
  // socket the verifier owns the port (a second bind would need SO_REUSEADDR, which would let
  // any local user bind it too and take knocks): it sends the bytes the monitor signed.
  let replySockets: Awaited<ReturnType<typeof bindReplySockets>> | null = null;
  let supervisor: VerifierSupervisor | null = null;
  // The returning lane (nft-ruleset.ts) delivers to that socket: passed on unread, at most
  // LANE_PER_SECOND a second whatever the kernel let through.
  let laneWindow = 0;
  let laneCount = 0;
  const onLane: LaneDatagram = (bytes, source, port, receivedAt) => {
    const second = Math.floor(Date.now() / 1000);
    if (second !== laneWindow) {
      laneWindow = second;
      laneCount = 0;
    }
    if (++laneCount > LANE_PER_SECOND) return;
    supervisor?.send({
      t: 'datagram',
      source,
      port,
      bytes: bytes.toString('base64'),
      receivedAt: receivedAt.toString(),
    });
  };
  try {
    await forwarder?.init();
    replySockets = cfg.capture.mode === 'pcap' ? await bindReplySockets(cfg.port, onLane) : null;
  } catch (err) {
    await closeCluster();
    throw err;
  }

  const replay = new ReplayStore(cfg.replayFile, (err) =>
    audit.log(err ? 'persist_error' : 'persist_ok', {
      detail: err
        ? `replay store not persisted (${err.message}); enforcing from memory`
        : 'replay store writable again',
    }),
  );
  // entries cover the window now in force, also if max_skew was raised since they were written
  const loaded = replay.load(Date.now(), cfg.maxSkewSeconds);
  // pcap mode, nftables: who got in just before a restart keeps the kernel's returning lane
  // (firewall/nft-ruleset.ts), as the verifier's fair queue keeps them (pipeline.ts)
  const restoreReturning = async (): Promise<void> => {
    const now = Date.now();
    const sources = replay
      .live(now)
      .flatMap((e) =>
        e.source === undefined
          ? []
          : [{ source: e.source, seconds: (e.timestamp * 1000 + TRUSTED_SOURCE_MS - now) / 1000 }],
      );
    await firewall.returning?.(sources);
  };
  try {
    await restoreReturning();
  } catch (err) {
    audit.log('firewall_error', { detail: `returning lane not restored: ${(err as Error).message}` });
  }
  const monitor = new Monitor({
    serverFingerprint: identity.fingerprint,
    users: () => users,
    replay,
    firewall,
    audit,
    now: () => Date.now(),
    maxSkewSeconds: cfg.maxSkewSeconds,
    shared:
      cluster && cfg.cluster
        ? {
            fail: cfg.cluster.fail,
            claim: (k, t) => cluster.shared.claim(k, t),
            release: (k) => cluster.shared.release(k),
          }
        : null,
    notify: (msgs) => supervisor?.send(...msgs),
    gateway,
    forwarder,
    protect: cfg.protect,
    sendReply: async (reply, to) => {
      const bytes = await signReply(reply, key, new Date());
      if (replySockets) await replySockets.send(bytes, to.address, to.port);
      else
        supervisor?.send({
          t: 'reply',
          address: to.address,
          port: to.port,
          bytes: Buffer.from(bytes).toString('base64'),
        });
    },
    ...(opts.commands ? { commands: opts.commands(audit) } : {}),
  });
  // the verifier's counters, across its restarts, with the monitor's own
  const fromVerifiers = new VerifierCounters();
  const counters = (): Record<string, number> => fromVerifiers.total(monitor.counters);
  const reportCounters = cfg.verbose ? countersReporter(audit, counters) : null;
  const started = Date.now();

  let reloading: Promise<{ users: number }> | null = null;
  const reload = (why = 'request'): Promise<{ users: number }> => {
    reloading ??= (async () => {
      try {
        const next = await loadUsers(cfg.stateDir);
        users = next;
        supervisor?.send({ t: 'reload', records: [...next.records.values()] });
        audit.log('reload', { detail: why, users: next.count });
        return { users: next.count };
      } catch (err) {
        audit.log('reload_failed', {
          detail: `${(err as Error).message}; keeping the last good keyring (${users.count} keys)`,
        });
        throw err;
      } finally {
        reloading = null;
      }
    })();
    return reloading;
  };

  let refusedDetail = '';
  onKeyring = (r) => {
    if (r.kind === 'updated') {
      refusedDetail = '';
      audit.log('cluster_keyring', { detail: `took revision ${r.revision} from redis` });
      reload(`cluster keyring revision ${r.revision}`).catch(() => {});
    } else if (r.kind === 'refused' && r.detail !== refusedDetail) {
      // once per distinct reason: a flood of messages on the channel writes one line
      refusedDetail = r.detail;
      audit.log('cluster_keyring_refused', {
        detail: `${r.detail}; keeping the last good keyring (${users.count} keys)`,
      });
    }
  };

  const status = async (): Promise<Record<string, unknown>> => ({
    uptimeSeconds: Math.round((Date.now() - started) / 1000),
    serverFingerprint: identity.fingerprint,
    capture: cfg.capture.mode === 'pcap' ? `pcap:${cfg.capture.device}` : `udp:${cfg.capture.host}`,
    port: cfg.port,
    firewall: cfg.firewall,
    protect: formatAccessList(cfg.protect),
    users: users.count,
    replayEntries: replay.size,
    replayPersisting: replay.persisting,
    cluster: cluster?.status() ?? null,
    counters: counters(),
    captureStats: fromVerifiers.captureStats,
    verifierUser: account?.name ?? null,
    verifierRestarts: supervisor?.restarts ?? 0,
    processes: supervisor?.processes() ?? [],
    grants: statusGrants(await listGrants(firewall, forwarder), Date.now()),
  });

  // keyring.json is replaced by rename: watch the directory, debounce, reload.
  let debounce: NodeJS.Timeout | null = null;
  const watcher = watch(cfg.stateDir, (_event, name) => {
    if (name !== 'keyring.json') return;
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = null;
      reload('keyring changed').catch(() => {});
    }, 50);
  });
  const onHup = (): void => {
    reload('SIGHUP').catch(() => {});
  };
  process.on('SIGHUP', onHup);
  // logrotate: after the file was moved, SIGUSR1 makes the audit log open its name again
  const onUsr1 = (): void => audit.reopen?.();
  process.on('SIGUSR1', onUsr1);

  let checking = false;
  let ticks = 0;
  // every second; it never rejects (its errors are audit lines)
  const maintain = async (): Promise<void> => {
    if (checking) return;
    checking = true;
    try {
      const now = Date.now();
      monitor.flush();
      reportCounters?.();
      replay.prune(now);
      // a missed message on the channel is caught up within KEYRING_POLL_SECONDS
      if (cluster && ++ticks % KEYRING_POLL_SECONDS === 0) void cluster.keyringSync.sync();
      await firewall.sweep(now);
      if (forwarder) {
        await forwarder.sweep(now);
        if (!(await forwarder.healthy())) {
          await forwarder.init();
          audit.log('firewall_restored', {
            detail: 'our forwarding rules were missing or altered; reinstalled',
          });
        }
      }
      if (!(await firewall.healthy())) {
        await firewall.init();
        await restoreReturning();
        audit.log('firewall_restored', {
          detail: `our ${cfg.firewall} rules were missing or altered; reinstalled`,
        });
      }
    } catch (err) {
      audit.log('firewall_error', { detail: (err as Error).message });
    } finally {
      checking = false;
    }
  };
  const maintenance = setInterval(() => void maintain(), 1000);

  // The unprivileged side: capture (pcap mode: a process with CAP_NET_RAW only) and the
  // verifier (no capability at all), restarted by the supervisor if they die or stall.
  const serverKey = key.armor();
  supervisor = new VerifierSupervisor({
    captureArgs:
      cfg.capture.mode === 'pcap'
        ? captureChildArgs({
            device: cfg.capture.device,
            port: cfg.port,
            maxPayload: PACKET_MAX_BYTES,
            onDatagram: () => {},
            recipientKeyIds: [...identity.recipientKeyIds],
          })
        : null,
    account,
    cwd: verifierDir(cfg.stateDir, account),
    init: () => ({
      t: 'init',
      serverKey,
      records: [...users.records.values()],
      settings: {
        capture: cfg.capture,
        port: cfg.port,
        maxSkewSeconds: cfg.maxSkewSeconds,
        verbose: cfg.verbose,
        gateway,
      },
      replay: replay.live(Date.now()),
    }),
    onLine: (line, peer) => {
      void monitor.line(line, peer);
    },
    onOversize: (n) => monitor.oversize(n),
    onCounters: fromVerifiers.onCounters,
    audit,
  });
  // The control socket opens last: once `spad status` answers, knocks are being read.
  let control: Server;
  try {
    await supervisor.start();
    control = await listenControl(cfg.socketPath, async (cmd) => {
      switch (cmd) {
        case 'status':
          return status();
        case 'reload':
          return reload('control');
        case 'fw-list':
          return listGrants(firewall, forwarder);
        case 'fw-flush':
          await flushGrants(firewall, forwarder);
          return { flushed: true };
      }
    });
  } catch (err) {
    clearInterval(maintenance);
    watcher.close();
    process.off('SIGHUP', onHup);
    process.off('SIGUSR1', onUsr1);
    await supervisor.stop().catch(() => {});
    await closeCluster();
    throw err;
  }
  audit.log('start', {
    detail: `listening ${cfg.capture.mode === 'pcap' ? `pcap on ${cfg.capture.device}` : `udp on ${cfg.capture.host}`} port ${cfg.port}`,
    fingerprint: identity.fingerprint,
    users: users.count,
    protect: formatAccessList(cfg.protect),
    firewall: cfg.firewall,
    replayLoaded: loaded.loaded,
    verifierUser: account?.name ?? null,
  });

  let stopped = false;
  return {
    monitor,
    firewall,
    reload: () => reload('request'),
    status,
    async stop() {
      if (stopped) return;
      stopped = true;
      await supervisor?.stop();
      await monitor.idle();
      clearInterval(maintenance);
      if (debounce) clearTimeout(debounce);
      watcher.close();
      process.off('SIGHUP', onHup);
      process.off('SIGUSR1', onUsr1);
      await new Promise<void>((r) => control.close(() => r()));
      await closeCluster();
      await firewall.shutdown({ removeProtections: cfg.removeOnExit });
      await forwarder?.shutdown({ removeProtections: cfg.removeOnExit });
      replySockets?.close();
      audit.log('stop', { counters: counters() });
      audit.flush();
    },
  };
}
