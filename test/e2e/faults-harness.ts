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
import { createTopology, type Topology } from '../../scripts/netns.js';
import { probeOne, startServices } from './firewall-harness.js';
import { type AuditLine, type Keys, type Spad, setupKeys, startSpad } from './spad-harness.js';

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
    const args = ['--interface', 'eth0', '--protect', 'tcp/22', '--firewall', backend, '--config', cfg];
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
        rig.spad = await startSpad(topo.server, stateDir, args);
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
