/**
 * Shared set-up for the fault and flood e2e tests (test/e2e/faults-*.test.ts, flood-*.test.ts):
 * a fresh topology, a server state dir with alice enrolled, an echo service on tcp/22, and spad
 * on the server's eth0 with a given backend and config. Knocks are sealed from alice's keystore
 * (scripts/bench-lib.ts), so the same bytes can be replayed. `close()` stops everything and
 * removes the namespaces and temp files; call it from `after`.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { callControl } from '../../server/control.js';
import { sealKnocks } from '../../scripts/bench-lib.js';
import { createTopology, type Topology, waitFor } from '../../scripts/netns.js';
import { probeOne, startServices } from './firewall-harness.js';
import { type AuditLine, BIN, type Keys, type Spad, setupKeys, startSpad } from './spad-harness.js';

export interface FaultRig {
  readonly topo: Topology;
  readonly keys: Keys;
  readonly alice: { home: string; fingerprint: string };
  readonly backend: 'nftables' | 'iptables';
  /** The running spad (replaced by restart()). */
  spad: Spad;
  /** spad's arguments, state dir excepted. */
  readonly args: readonly string[];
  start(stateDir?: string): Promise<Spad>;
  /** Knocks by alice naming `source` (default: the client's IPv4 address), hex. */
  knocks(n: number, source?: string): Promise<string[]>;
  control(cmd: 'status' | 'fw-list' | 'fw-flush' | 'reload'): Promise<unknown>;
  /** 'open' when the client can connect to tcp/22 on the server. */
  ssh(from?: 'client' | 'attacker'): Promise<string>;
  /** Audit lines after index `from` with this event. */
  since(from: number, event: string): AuditLine[];
  close(): Promise<void>;
}

export interface FaultRigOptions {
  readonly backend?: 'nftables' | 'iptables';
  /** spad config file contents (JSON object). */
  readonly config?: Record<string, unknown>;
  /** spa-keys add arguments for alice. */
  readonly enroll?: readonly string[];
  /** Start spad right away (default true); otherwise call start() yourself. */
  readonly autostart?: boolean;
  /**
   * Write the audit log to this file instead of reading it from spad's stdout (floods: a line per
   * datagram would cost this process as much CPU as spad). `spad.lines` then stays empty and
   * start() waits for the control socket instead of the 'start' line.
   */
  readonly auditLog?: string;
  /** How spad captures (default `--interface eth0`; e.g. `--udp-server`). */
  readonly capture?: readonly string[];
}

/** spad with its audit log in a file: started when its control socket answers. */
async function startQuiet(
  host: Topology['server'],
  stateDir: string,
  args: readonly string[],
): Promise<Spad> {
  const proc = host.spawn(process.execPath, [BIN.spad, '--state-dir', stateDir, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const gone = () => proc.exitCode !== null || proc.signalCode !== null;
  const spad: Spad = {
    proc,
    lines: [],
    stderr: () => err,
    waitFor: () => Promise.reject(new Error('the audit log of this spad is in a file')),
    async stop() {
      if (gone()) return;
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (!gone()) proc.kill('SIGKILL');
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
  const up = await waitFor(
    () =>
      callControl(join(stateDir, 'spad.sock'), 'status', 500).then(
        () => true,
        () => false,
      ),
    15_000,
    50,
  );
  if (!up) {
    await spad.kill();
    throw new Error(`spad did not start: ${err.slice(-500)}`);
  }
  return spad;
}

export async function faultRig(o: FaultRigOptions = {}): Promise<FaultRig> {
  const backend = o.backend ?? 'nftables';
  const topo = await createTopology();
  const children: ChildProcess[] = [];
  let keys: Keys | undefined;
  try {
    keys = await setupKeys();
    const alice = await keys.enroll('alice', o.enroll ?? ['--open', 'tcp/22', '--timeout', '30']);
    children.push(await startServices(topo.server, [22], []));
    const cfg = join(keys.dir, 'spad.json');
    writeFileSync(cfg, JSON.stringify(o.config ?? {}));
    const args = [
      ...(o.capture ?? ['--interface', 'eth0']),
      '--protect',
      'tcp/22',
      '--firewall',
      backend,
      '--config',
      cfg,
    ];
    const k = keys;
    let stateDir = k.stateDir;
    const rig: FaultRig = {
      topo,
      keys: k,
      alice,
      backend,
      spad: undefined as unknown as Spad,
      args,
      async start(dir?: string) {
        if (dir) stateDir = dir;
        rig.spad = o.auditLog
          ? await startQuiet(topo.server, stateDir, [...args, '--audit-log', o.auditLog])
          : await startSpad(topo.server, stateDir, args);
        return rig.spad;
      },
      knocks: (n, source = topo.client.ipv4) =>
        sealKnocks(alice.home, n, { user: 'alice', source, serverFingerprint: k.serverFingerprint }),
      control: (cmd) => callControl(join(stateDir, 'spad.sock'), cmd),
      ssh: (from = 'client') => probeOne(topo[from], ['tcp', topo.server.ipv4, 22], 600),
      since: (from, event) => rig.spad.lines.slice(from).filter((l) => l.event === event),
      async close() {
        await rig.spad?.stop();
        for (const c of children) c.kill('SIGKILL');
        await topo.destroy();
        k.cleanup();
      },
    };
    if (o.autostart ?? true) await rig.start();
    return rig;
  } catch (e) {
    for (const c of children) c.kill('SIGKILL');
    await topo.destroy();
    keys?.cleanup();
    throw e;
  }
}
