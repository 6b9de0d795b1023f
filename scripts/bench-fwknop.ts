/**
 * spa side by side with fwknop (Debian's fwknop-server/fwknop-client 2.6.10, GPG mode with
 * RSA-2048 keys, since its ECC mode does not decrypt: fwknop issue #247),
 * on the same machine, in the same run, with the same probe:
 *  - knock-to-open: the client namespace sends a ready-made knock and times until a TCP connect
 *    to the protected port succeeds (test/e2e/fixtures/knock-probe.ts; fwknop packets are made
 *    beforehand with `fwknop --test -B`), grants flushed between knocks; pcap capture, and each
 *    daemon's UDP socket mode;
 *  - valid knocks per second: a burst of distinct valid knocks sent at once (pcap), after an
 *    unmeasured first burst of the same size for each daemon (spa's V8 compiles its code,
 *    fwknopd starts gpg-agent); granted knocks / time until the last was handled; server CPU per
 *    granted knock (the daemon and its children, plus gpg-agent for fwknop);
 *  - packet size on the wire; client wall time (median of --runs real sends of each client
 *    binary, from exec to exit, inside the client namespace), beside a bare `node -e 0` there.
 * Each system gets its own fresh topology. spa uses its defaults (Curve25519 keys, nftables);
 * fwknopd uses iptables (Debian's build) with a DROP rule for tcp/22 as its docs ask.
 * Last, the fwknop client's own packets knocked at spad (README "Moving from fwknop": spad takes
 * over the RSA-2048 server key, the client is enrolled with --fwknop), beside the same figures
 * for fwknopd: the rows marked "fwknop client -> spad | -> fwknopd".
 * Prints ONE table: metric | spa | fwknop | ratio (spa / fwknop); with $SPA_BENCH_DATA set, also
 * writes the raw figures there as fwknop.json (bench-lib.ts saveFigures, for bench-plot.ts).
 * Usage: node dist/scripts/bench-fwknop.js [--knocks 20] [--burst 100] [--runs 20]
 * Needs root, gpg, /usr/sbin/fwknopd and /usr/bin/fwknop. Cleans up even when it fails.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { seal } from '../protocol/envelope.js';
import { callControl } from '../server/control.js';
import { startServices } from '../test/e2e/firewall-harness.js';
import { BIN, type Keys, setupKeys, startSpad } from '../test/e2e/spad-harness.js';
import { freshPayload, testKey } from '../test/helpers/keys.js';
import {
  blast,
  cpuMs,
  type FwknopFigures,
  pct,
  type SystemFigures,
  saveFigures,
  sealKnocks,
  spadBurst,
  startProbe,
} from './bench-lib.js';
import { onInterrupt, tempDir } from './cleanup.js';
import { createTopology, type Host, run, type Topology, waitFor } from './netns.js';

const { values } = parseArgs({
  options: {
    knocks: { type: 'string', default: '20' },
    burst: { type: 'string', default: '100' },
    runs: { type: 'string', default: '20' },
  },
});
const KNOCKS = Math.max(3, Math.min(200, Number(values.knocks)));
const BURST = Math.max(10, Math.min(500, Number(values.burst)));
const RUNS = Math.max(3, Math.min(100, Number(values.runs)));
const FWKNOPD = '/usr/sbin/fwknopd';
const FWKNOP = '/usr/bin/fwknop';

type Figures = Record<string, number | string>;
type Side = { f: Figures; raw: SystemFigures };
/** `node -e 0` wall times in spa's client namespace (spaSide measures them). */
let nodeFloor: number[] = [];
const emptyRaw = (): SystemFigures => ({
  latency: { pcap: [], udp: [] },
  rate: Number.NaN,
  cpuMs: Number.NaN,
  client: [],
});

async function must(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(cmd, args, { timeoutMs: 120_000, ...(env ? { env } : {}) });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Wall time of one program run inside `host`, ms (exec to exit). */
function wall(host: Host, cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile(
      'ip',
      ['netns', 'exec', host.ns, cmd, ...args],
      { timeout: 30_000, env: env ?? process.env },
      (err) => {
        if (err && typeof err.code !== 'number') reject(err);
        else resolve(performance.now() - t0);
      },
    );
  });
}

// ---------------------------------------------------------------- spa

async function spaSide(): Promise<Side> {
  const topo = await createTopology();
  let keys: Keys | undefined;
  const service = await startServices(topo.server, [22], []);
  const f: Figures = {};
  const raw = emptyRaw();
  const cleanup = onInterrupt(async () => {
    service.kill('SIGKILL');
    await topo.destroy();
    keys?.cleanup();
  });
  try {
    keys = await setupKeys();
    const alice = await keys.enroll('alice', ['--open', 'tcp/22', '--timeout', '30']);
    const k = keys;
    const cfg = join(k.dir, 'bench.json');
    writeFileSync(cfg, JSON.stringify({ rate_burst: 5000, rate_per_second: 5000 }));
    const knocks = (n: number) =>
      sealKnocks(alice.home, n, {
        user: 'alice',
        source: topo.client.ipv4,
        serverFingerprint: k.serverFingerprint,
      });
    for (const mode of ['pcap', 'udp'] as const) {
      const capture = mode === 'pcap' ? ['--interface', 'eth0'] : ['--udp-server'];
      const spad = await startSpad(topo.server, k.stateDir, [
        ...capture,
        '--protect',
        'tcp/22',
        '--config',
        cfg,
      ]);
      const sock = join(k.stateDir, 'spad.sock');
      try {
        const probe = startProbe(topo.client, topo.server.ipv4);
        const ms: number[] = [];
        for (const hex of await knocks(KNOCKS)) {
          const x = await probe.measure(hex);
          raw.latency[mode].push(x);
          if (x !== null) ms.push(x);
          await callControl(sock, 'fw-flush');
        }
        probe.close();
        f[`latency-${mode}`] = pct(ms, 50);
        f[`lost-${mode}`] = KNOCKS - ms.length;
        if (mode === 'pcap') {
          // a first burst to warm V8 up, unmeasured, as fwknopd's below (bench-knock.ts measures both)
          await spadBurst(spad, topo.client, topo.server.ipv4, await knocks(BURST));
          await callControl(sock, 'fw-flush');
          const burst = await knocks(BURST);
          const b = await spadBurst(spad, topo.client, topo.server.ipv4, burst);
          f.rate = b.rate;
          f.cpu = b.cpuMs;
          f.burst = `${b.granted}/${BURST}`;
          f.size = Buffer.from(burst[0] as string, 'hex').length;
          raw.rate = f.rate;
          raw.cpuMs = f.cpu;
        }
      } finally {
        await spad.stop();
      }
    }
    // packet size with RSA-2048 keys on both sides (as fwknop's): sealed in process
    const [srv, cli] = await Promise.all([
      testKey('bench-srv-rsa2048', { kind: 'rsa2048' }),
      testKey('bench-cli-rsa2048', { kind: 'rsa2048' }),
    ]);
    const now = new Date();
    f.sizeRsa = (
      await seal(freshPayload({ server: srv, now }), {
        signingKey: cli.privateKey,
        serverKey: srv.publicKey,
        now,
      })
    ).length;
    // client wall time: real sends by the real binary
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      times.push(
        await wall(topo.client, process.execPath, [
          BIN.spa,
          '-A',
          'tcp/22',
          '--home',
          alice.home,
          topo.server.ipv4,
        ]),
      );
    }
    f.client = pct(times, 50);
    raw.client = times;
    // the floor: a bare node in the same namespace
    const floor: number[] = [];
    for (let i = 0; i < RUNS; i++) floor.push(await wall(topo.client, process.execPath, ['-e', '0']));
    f.node = pct(floor, 50);
    nodeFloor = floor;
  } finally {
    await cleanup();
  }
  return { f, raw };
}

// ---------------------------------------------------------------- fwknop

interface Gpg {
  dir: string;
  env: NodeJS.ProcessEnv;
  srv: string;
  cli: string;
}

/** RSA-2048 key pairs with encryption subkeys, imported and certified both ways (reference §2.8). */
async function gpgSetup(dir: string): Promise<Gpg> {
  const srvHome = join(dir, 'srv');
  const cliHome = join(dir, 'cli');
  for (const d of [srvHome, cliHome, join(dir, 'home')]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const env = { ...process.env, HOME: join(dir, 'home') };
  const gpg = (home: string, ...args: string[]) =>
    must(
      'gpg',
      ['--homedir', home, '--batch', '--yes', '--pinentry-mode', 'loopback', '--passphrase', '', ...args],
      env,
    );
  const fpr = async (home: string) =>
    /^fpr:+([0-9A-F]{40}):/m.exec(await gpg(home, '--with-colons', '--list-keys'))?.[1] ?? '';
  await gpg(
    srvHome,
    '--quick-gen-key',
    'fwknop server <spa-server@example.test>',
    'rsa2048',
    'default',
    'never',
  );
  await gpg(
    cliHome,
    '--quick-gen-key',
    'fwknop client <spa-client@example.test>',
    'rsa2048',
    'default',
    'never',
  );
  const srv = await fpr(srvHome);
  const cli = await fpr(cliHome);
  await gpg(srvHome, '--quick-add-key', srv, 'rsa2048', 'encr', 'never');
  await gpg(cliHome, '--quick-add-key', cli, 'rsa2048', 'encr', 'never');
  writeFileSync(join(dir, 'server.asc'), await gpg(srvHome, '--armor', '--export', srv));
  writeFileSync(join(dir, 'client.asc'), await gpg(cliHome, '--armor', '--export', cli));
  await gpg(cliHome, '--import', join(dir, 'server.asc'));
  await gpg(srvHome, '--import', join(dir, 'client.asc'));
  await gpg(srvHome, '--quick-sign-key', cli);
  await gpg(cliHome, '--quick-sign-key', srv);
  return { dir, env, srv, cli };
}

function clientArgs(g: Gpg, server: string, client: string): string[] {
  return [
    '--no-rc-file',
    '--no-save-args',
    '-A',
    'tcp/22',
    '-a',
    client,
    '-D',
    server,
    '--gpg-recipient-key',
    g.srv,
    '--gpg-signer-key',
    g.cli,
    '--gpg-home-dir',
    join(g.dir, 'cli'),
    '--gpg-no-signing-pw',
  ];
}

/** `n` fwknop packets (the UDP payload text), made with `fwknop --test -B` (nothing sent). */
async function fwknopPackets(g: Gpg, topo: Topology, n: number): Promise<string[]> {
  const out: string[] = [];
  const file = join(g.dir, 'pkt.txt');
  for (let i = 0; i < n; i++) {
    rmSync(file, { force: true });
    await run(FWKNOP, [...clientArgs(g, topo.server.ipv4, topo.client.ipv4), '--test', '-B', file], {
      env: g.env,
    });
    const text = readFileSync(file, 'utf8').trim();
    if (text.length < 400) throw new Error(`fwknop --test made no packet (${text.length} chars)`);
    out.push(text);
  }
  return out;
}

interface Fwknopd {
  proc: ChildProcess;
  log: () => string;
  stop(): Promise<void>;
}

async function startFwknopd(g: Gpg, host: Host, udp: boolean): Promise<Fwknopd> {
  const runDir = join(g.dir, udp ? 'run-udp' : 'run-pcap');
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const conf = join(g.dir, 'fwknopd.conf');
  const access = join(g.dir, 'access.conf');
  writeFileSync(conf, `PCAP_INTF eth0;\nFWKNOP_RUN_DIR ${runDir};\n`);
  writeFileSync(
    access,
    [
      'SOURCE ANY',
      'OPEN_PORTS tcp/22',
      'FW_ACCESS_TIMEOUT 30',
      'REQUIRE_SOURCE_ADDRESS Y',
      `GPG_HOME_DIR ${join(g.dir, 'srv')}`,
      `GPG_DECRYPT_ID ${g.srv}`,
      'GPG_ALLOW_NO_PW Y',
      'GPG_REQUIRE_SIG Y',
      `GPG_FINGERPRINT_ID ${g.cli}`,
      '',
    ].join('\n'),
  );
  chmodSync(conf, 0o600);
  chmodSync(access, 0o600);
  const args = [
    '-f',
    '-c',
    conf,
    '-a',
    access,
    '-i',
    'eth0',
    '-p',
    join(runDir, 'fwknopd.pid'),
    '-d',
    join(runDir, 'digest.cache'),
  ];
  if (udp) args.push('-U');
  // its log goes to a pipe: line-buffer it, or lines arrive in blocks long after the fact
  const proc = host.spawn('stdbuf', ['-oL', '-eL', FWKNOPD, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: g.env,
  });
  let text = '';
  proc.stdout?.on('data', (c: Buffer) => {
    text += c.toString();
  });
  proc.stderr?.on('data', (c: Buffer) => {
    text += c.toString();
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const d: Fwknopd = {
    proc,
    log: () => text,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
  };
  if (!(await waitFor(async () => /main event loop|Kicking off UDP server/.test(text), 15_000, 50))) {
    await d.stop();
    throw new Error(`fwknopd did not start: ${text.slice(-800)}`);
  }
  if (udp) await new Promise((r) => setTimeout(r, 300)); // it logs just before binding
  return d;
}

/** CPU ms of the gpg-agent serving `home` (0 when none runs). */
function agentCpu(home: string): number {
  let total = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.startsWith('gpg-agent') && cmd.includes(home)) total += cpuMs(Number(name));
    } catch {
      // gone
    }
  }
  return total;
}

/**
 * Valid knocks fully handled: fwknopd logs "signed by" once the signature checked out, then adds
 * the rule in the same step ("Added access rule", silent when an identical rule with the same
 * expiry second is already there, as in a burst from one client).
 */
const grants = (log: string): number => (log.match(/Incoming SPA data signed by/g) ?? []).length;
const handled = (log: string): number => (log.match(/SPA Packet from IP/g) ?? []).length;

async function fwknopSide(): Promise<Side> {
  const tmp = tempDir('spa-bench-fwknop-');
  const dir = tmp.path;
  const topo = await createTopology();
  const service = await startServices(topo.server, [22], []);
  const f: Figures = {};
  const raw = emptyRaw();
  let g: Gpg | undefined;
  const cleanup = onInterrupt(async () => {
    service.kill('SIGKILL');
    await topo.destroy();
    if (g) {
      for (const h of ['srv', 'cli'])
        await run('gpgconf', ['--homedir', join(g.dir, h), '--kill', 'gpg-agent'], { env: g.env });
    }
    await tmp.remove();
  });
  try {
    g = await gpgSetup(dir);
    const gg = g;
    // fwknopd only adds ACCEPT rules in its own chain, jumped to first: the admin drops the port
    await must('ip', [
      'netns',
      'exec',
      topo.server.ns,
      'iptables',
      '-A',
      'INPUT',
      '-p',
      'tcp',
      '--dport',
      '22',
      '-m',
      'conntrack',
      '--ctstate',
      'ESTABLISHED,RELATED',
      '-j',
      'ACCEPT',
    ]);
    await must('ip', [
      'netns',
      'exec',
      topo.server.ns,
      'iptables',
      '-A',
      'INPUT',
      '-p',
      'tcp',
      '--dport',
      '22',
      '-j',
      'DROP',
    ]);
    const flush = () => must('ip', ['netns', 'exec', topo.server.ns, 'iptables', '-F', 'FWKNOP_INPUT']);
    for (const mode of ['pcap', 'udp'] as const) {
      const d = await startFwknopd(gg, topo.server, mode === 'udp');
      try {
        const packets = await fwknopPackets(gg, topo, KNOCKS);
        const probe = startProbe(topo.client, topo.server.ipv4);
        const ms: number[] = [];
        for (const p of packets) {
          const x = await probe.measure(Buffer.from(p).toString('hex'));
          raw.latency[mode].push(x);
          if (x !== null) ms.push(x);
          await flush();
        }
        probe.close();
        f[`latency-${mode}`] = pct(ms, 50);
        f[`lost-${mode}`] = KNOCKS - ms.length;
        if (mode === 'pcap') {
          f.size = packets[0]?.length ?? Number.NaN;
          // a first burst, unmeasured, as spa's (here it starts gpg-agent and fills caches)
          const w0 = handled(d.log());
          const warmUp = await fwknopPackets(gg, topo, BURST);
          await blast(
            topo.client,
            topo.server.ipv4,
            warmUp.map((p) => Buffer.from(p).toString('hex')),
          );
          await waitFor(async () => handled(d.log()) - w0 >= BURST, 30_000, 20);
          await flush();
          const burst = await fwknopPackets(gg, topo, BURST);
          const g0 = grants(d.log());
          const h0 = handled(d.log());
          const pid = d.proc.pid as number;
          const srvHome = join(gg.dir, 'srv');
          const cpu = () => cpuMs(pid, true) + agentCpu(srvHome);
          const c0 = cpu();
          const t0 = Date.now();
          await blast(
            topo.client,
            topo.server.ipv4,
            burst.map((p) => Buffer.from(p).toString('hex')),
          );
          // done when every packet was seen, or nothing new happened for 3 s
          let last = -1;
          let still = Date.now();
          await waitFor(
            async () => {
              const n = handled(d.log()) - h0;
              if (n !== last) {
                last = n;
                still = Date.now();
              }
              return n >= BURST || Date.now() - still > 3000;
            },
            120_000,
            20,
          );
          const t1 = Date.now() - (handled(d.log()) - h0 >= BURST ? 0 : 3000);
          const granted = grants(d.log()) - g0;
          f.rate = (granted * 1000) / (t1 - t0);
          f.cpu = (cpu() - c0) / Math.max(1, granted);
          f.burst = `${granted}/${BURST}`;
          raw.rate = f.rate;
          raw.cpuMs = f.cpu;
        }
      } finally {
        await d.stop();
        await flush().catch(() => {});
      }
    }
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      times.push(await wall(topo.client, FWKNOP, clientArgs(gg, topo.server.ipv4, topo.client.ipv4), gg.env));
    }
    f.client = pct(times, 50);
    raw.client = times;
  } finally {
    await cleanup();
  }
  return { f, raw };
}

// ------------------------------------------------- fwknop client -> spad

/**
 * The fwknop client's packets (RSA-2048 keys, made as for fwknopd) knocked at spad, which takes
 * over fwknopd's server key and enrolls the client with --fwknop (README "Moving from fwknop").
 */
async function fwknopToSpadSide(): Promise<Figures> {
  const tmp = tempDir('spa-bench-fwknop-spad-');
  const topo = await createTopology();
  const service = await startServices(topo.server, [22], []);
  const f: Figures = {};
  let g: Gpg | undefined;
  let keys: Keys | undefined;
  const cleanup = onInterrupt(async () => {
    service.kill('SIGKILL');
    await topo.destroy();
    if (g) {
      for (const h of ['srv', 'cli'])
        await run('gpgconf', ['--homedir', join(g.dir, h), '--kill', 'gpg-agent'], { env: g.env });
    }
    keys?.cleanup();
    await tmp.remove();
  });
  try {
    g = await gpgSetup(tmp.path);
    const gg = g;
    keys = await setupKeys();
    const gpgOut = (args: string[]) =>
      must('gpg', ['--homedir', join(gg.dir, 'srv'), '--batch', ...args], gg.env);
    writeFileSync(
      join(keys.stateDir, 'server.key'),
      await gpgOut(['--armor', '--export-secret-keys', gg.srv]),
      {
        mode: 0o600,
      },
    );
    writeFileSync(join(keys.stateDir, 'server.asc'), await gpgOut(['--armor', '--export', gg.srv]));
    await must(process.execPath, [
      BIN['spa-keys'],
      'add',
      '--state-dir',
      keys.stateDir,
      '--user',
      'client',
      '--key',
      join(gg.dir, 'client.asc'),
      '--open',
      'tcp/22',
      '--timeout',
      '30',
      '--fwknop',
      '--yes',
    ]);
    const spad = await startSpad(topo.server, keys.stateDir, ['--interface', 'eth0', '--protect', 'tcp/22']);
    const sock = join(keys.stateDir, 'spad.sock');
    try {
      const probe = startProbe(topo.client, topo.server.ipv4);
      const ms: number[] = [];
      for (const p of await fwknopPackets(gg, topo, KNOCKS)) {
        const x = await probe.measure(Buffer.from(p).toString('hex'));
        if (x !== null) ms.push(x);
        await callControl(sock, 'fw-flush');
      }
      probe.close();
      f['latency-pcap'] = pct(ms, 50);
      f['lost-pcap'] = KNOCKS - ms.length;
      const hex = async (): Promise<string[]> =>
        (await fwknopPackets(gg, topo, BURST)).map((p) => Buffer.from(p).toString('hex'));
      await spadBurst(spad, topo.client, topo.server.ipv4, await hex()); // warm-up, unmeasured
      await callControl(sock, 'fw-flush');
      const b = await spadBurst(spad, topo.client, topo.server.ipv4, await hex());
      f.rate = b.rate;
      f.cpu = b.cpuMs;
      f.burst = `${b.granted}/${BURST}`;
    } finally {
      await spad.stop();
    }
  } finally {
    await cleanup();
  }
  return f;
}

function fmt(x: number | string | undefined, digits = 1): string {
  return typeof x === 'number' ? (Number.isFinite(x) ? x.toFixed(digits) : '-') : (x ?? '-');
}

async function main(): Promise<void> {
  for (const bin of [FWKNOPD, FWKNOP]) if (!existsSync(bin)) throw new Error(`${bin} is not installed`);
  const spaRun = await spaSide();
  const fwkRun = await fwknopSide();
  const spa = spaRun.f;
  const fwk = fwkRun.f;
  const figures: FwknopFigures = { spa: spaRun.raw, fwknop: fwkRun.raw, node: nodeFloor };
  saveFigures('fwknop', figures);
  const mixed = await fwknopToSpadSide();
  const ratio = (a: number | string | undefined, b: number | string | undefined) =>
    typeof a === 'number' && typeof b === 'number' && b !== 0 ? `${(a / b).toFixed(2)}` : '-';
  const rows: Array<[string, number | string | undefined, number | string | undefined, number]> = [
    ['knock-to-open median ms (pcap)', spa['latency-pcap'], fwk['latency-pcap'], 1],
    ['knock-to-open median ms (UDP socket)', spa['latency-udp'], fwk['latency-udp'], 1],
    [
      'knocks lost in the latency runs (pcap / UDP)',
      `${spa['lost-pcap']} / ${spa['lost-udp']}`,
      `${fwk['lost-pcap']} / ${fwk['lost-udp']}`,
      0,
    ],
    ['valid knocks per second (burst, pcap)', spa.rate, fwk.rate, 1],
    ['  of the burst, valid knocks handled', spa.burst, fwk.burst, 0],
    ['server CPU ms per valid knock', spa.cpu, fwk.cpu, 1],
    ['packet bytes, each with its default keys (spa Curve25519, fwknop RSA-2048)', spa.size, fwk.size, 0],
    ['packet bytes, both RSA-2048', spa.sizeRsa, fwk.size, 0],
    ['packet bytes, both Curve25519', spa.size, 'n/a: fwknop GPG mode fails with ECC keys', 0],
    ['client wall time median ms (real send)', spa.client, fwk.client, 1],
    ['  bare `node -e 0` wall time median ms (the floor of a Node client)', spa.node, fwk.client, 1],
    // the fwknop client's own packets (RSA-2048), knocked at spad (first column) and at fwknopd
    [
      'fwknop client -> spad | -> fwknopd: knock-to-open median ms (pcap)',
      mixed['latency-pcap'],
      fwk['latency-pcap'],
      1,
    ],
    ['fwknop client -> spad | -> fwknopd: knocks lost (pcap)', mixed['lost-pcap'], fwk['lost-pcap'], 0],
    ['fwknop client -> spad | -> fwknopd: valid knocks per second (burst)', mixed.rate, fwk.rate, 1],
    ['fwknop client -> spad | -> fwknopd: of the burst, handled', mixed.burst, fwk.burst, 0],
    ['fwknop client -> spad | -> fwknopd: server CPU ms per valid knock', mixed.cpu, fwk.cpu, 1],
  ];
  const table = rows.map(([metric, a, b, digits]) => ({
    metric,
    spa: fmt(a, digits),
    fwknop: fmt(b, digits),
    'ratio spa/fwknop': ratio(a, b),
  }));
  console.log(
    `spa vs fwknop 2.6.10 (GPG, RSA-2048), same machine and run: ${KNOCKS} knocks for latency, ${BURST} for throughput, ${RUNS} client runs; ${new Date().toISOString()}`,
  );
  console.table(table);
}

await main();
