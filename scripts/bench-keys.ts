/**
 * Many-keys benchmark (docs/benchmarks.md "Targets": "per-packet verification cost flat from 1 to 10,000 enrolled
 * keys; start with 10,000 keys < 2 s").
 *
 * Generates --keys distinct Ed25519/Curve25519 key pairs (one per enrolled user, so every signer
 * is distinct; ~4 ms each), writes a keyring.json with all of them (and one with only the first),
 * then measures:
 *  - in process: the pipeline's cost per valid knock (server/pipeline.ts handle(): precheck,
 *    decrypt, signer lookup, verify, policy, a recording firewall) for knocks by key #1 with 1 key
 *    enrolled, and by key #1 and key #N with N enrolled; median of --knocks knocks each, measured
 *    interleaved, after one warm-up knock per signer (the first knock of a signer also parses its
 *    key: reported apart);
 *  - the real daemon in a namespace: start-up time (spawn to the 'start' audit line, median of 3)
 *    and CPU per valid knock over a burst of --knocks knocks (utime + stime from /proc), with 1
 *    and with N keys enrolled.
 *  - bloated keys (SECURITY.md "Bloated keys"): CPU per forged datagram (anyone's signature, an
 *    enrolled key's fingerprint in its issuer subpacket) naming a clean key and keys with 200,
 *    800 and 3,000 garbage self-signatures appended, with the key as given (what spad held
 *    before keys were minimized) and as the keyring now holds it (minimal, or refused at load),
 *    and what reading the key costs `spa-keys add` before and now. `--only bloated` runs this
 *    part alone.
 * Usage: node dist/scripts/bench-keys.js [--keys 10000] [--knocks 200] [--only bloated]
 * Needs root for the daemon part (skipped otherwise). Cleans up namespaces, processes and temp
 * files, also on SIGINT/SIGTERM/SIGHUP (scripts/cleanup.ts).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as openpgp from 'openpgp';
import {
  allowlistPath,
  initServer,
  loadServerKey,
  type KeyRecord,
  writeFileAtomic,
} from '../keyring/index.js';
import { parseAddress } from '../protocol/address.js';
import { seal } from '../protocol/envelope.js';
import { startServices } from '../test/e2e/firewall-harness.js';
import { type Spad, startSpad } from '../test/e2e/spad-harness.js';
import { freshPayload, fromPrivateKey, type TestKey } from '../test/helpers/keys.js';
import { granted, type Rig, recordFor, rig } from '../test/security/rig.js';
import { blast, cpuMs, pct } from './bench-lib.js';
import { onInterrupt, tempDir } from './cleanup.js';
import { createTopology, isRoot, waitFor } from './netns.js';

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '10000' },
    knocks: { type: 'string', default: '200' },
    only: { type: 'string' },
  },
});
const N = Math.max(2, Math.min(20_000, Number(values.keys)));
const KNOCKS = Math.max(10, Math.min(2000, Number(values.knocks)));

async function generate(n: number): Promise<TestKey[]> {
  const out: TestKey[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const { privateKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: `user${i}`, email: `user${i}@example.test` }],
      format: 'object',
    });
    out.push(fromPrivateKey(`user${i}`, privateKey));
    if ((i + 1) % 2000 === 0)
      console.error(`  ${i + 1} keys generated (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
  return out;
}

const recordOf = (k: TestKey, i: number): KeyRecord =>
  recordFor(k, { username: `user${i}`, sources: 'any', openPorts: ['tcp/22'], defaultTimeout: 30 });

async function knockBy(server: TestKey, k: TestKey, i: number, source = '198.51.100.2'): Promise<Uint8Array> {
  const now = new Date();
  return seal(freshPayload({ server, now, username: `user${i}`, source: parseAddress(source) }), {
    signingKey: k.privateKey,
    serverKey: server.publicKey,
    now,
  });
}

/** Time one handle() of a fresh knock, ms. */
async function timed(r: Rig, bytes: Uint8Array): Promise<number> {
  const t0 = performance.now();
  await granted(r, bytes);
  return performance.now() - t0;
}

async function inProcess(server: TestKey, keys: TestKey[]): Promise<Record<string, string>[]> {
  const first = keys[0] as TestKey;
  const last = keys[keys.length - 1] as TestKey;
  const one = await rig({ server, records: [recordOf(first, 0)], now: new Date() });
  const many = await rig({ server, records: keys.map(recordOf), now: new Date() });
  const cases: Array<{ name: string; r: Rig; k: TestKey; i: number }> = [
    { name: 'key #1, 1 key enrolled', r: one, k: first, i: 0 },
    { name: `key #1, ${N} enrolled`, r: many, k: first, i: 0 },
    { name: `key #${N}, ${N} enrolled`, r: many, k: last, i: N - 1 },
  ];
  const cold: number[] = [];
  for (const c of cases) {
    c.r.clock = Date.now();
    cold.push(await timed(c.r, await knockBy(server, c.k, c.i)));
  }
  const samples: number[][] = cases.map(() => []);
  const batches = await Promise.all(
    cases.map(async (c) => {
      const list: Uint8Array[] = [];
      for (let j = 0; j < KNOCKS; j++) list.push(await knockBy(server, c.k, c.i));
      return list;
    }),
  );
  for (let j = 0; j < KNOCKS; j++) {
    for (const [ci, c] of cases.entries()) {
      c.r.clock = Date.now();
      samples[ci]?.push(await timed(c.r, batches[ci]?.[j] as Uint8Array));
    }
  }
  const base = pct(samples[0] ?? [], 50);
  return cases.map((c, ci) => ({
    'in-process pipeline': c.name,
    'first knock ms (parses the key)': (cold[ci] ?? 0).toFixed(2),
    'median ms/knock': pct(samples[ci] ?? [], 50).toFixed(3),
    'p90 ms': pct(samples[ci] ?? [], 90).toFixed(3),
    'vs 1 key': (pct(samples[ci] ?? [], 50) / base).toFixed(2),
  }));
}

async function daemon(
  stateDirs: { one: string; many: string },
  server: TestKey,
  keys: TestKey[],
): Promise<Record<string, string>[]> {
  const topo = await createTopology();
  const service = await startServices(topo.server, [22], []);
  const rows: Record<string, string>[] = [];
  const cleanup = onInterrupt(async () => {
    service.kill('SIGKILL');
    await topo.destroy();
  });
  try {
    for (const [label, dir, signers] of [
      ['1 key', stateDirs.one, [0]],
      [`${N} keys`, stateDirs.many, [0, N - 1]],
    ] as const) {
      const starts: number[] = [];
      let spad: Spad | null = null;
      for (let run = 0; run < 3; run++) {
        await spad?.stop();
        const t0 = performance.now();
        spad = await startSpad(topo.server, dir, [
          '--interface',
          'eth0',
          '--protect',
          'tcp/22',
          '--config',
          join(dir, 'bench.json'),
        ]);
        starts.push(performance.now() - t0);
      }
      const s = spad as Spad;
      try {
        for (const i of signers) {
          const k = keys[i] as TestKey;
          // warm up: the first knock of a signer parses its key
          await blast(topo.client, topo.server.ipv4, [
            Buffer.from(await knockBy(server, k, i, topo.client.ipv4)).toString('hex'),
          ]);
          await s.waitFor((l) => l.event === 'grant', 5000, s.lines.length - 1);
          const burst: string[] = [];
          for (let j = 0; j < KNOCKS; j++)
            burst.push(Buffer.from(await knockBy(server, k, i, topo.client.ipv4)).toString('hex'));
          const mark = s.lines.length;
          const c0 = cpuMs(s.proc.pid as number, true);
          await blast(topo.client, topo.server.ipv4, burst);
          await waitFor(async () => s.lines.length - mark >= KNOCKS, 60_000, 50);
          const c1 = cpuMs(s.proc.pid as number, true);
          const ok = s.lines.slice(mark).filter((l) => l.event === 'grant').length;
          rows.push({
            'real spad (pcap, nftables)': `${label}, knocks by key #${i + 1}`,
            'start-up ms (median of 3)': pct(starts, 50).toFixed(0),
            'CPU ms/knock': ((c1 - c0) / Math.max(1, ok)).toFixed(2),
            granted: `${ok}/${KNOCKS}`,
          });
        }
      } finally {
        await s.stop();
      }
    }
  } finally {
    await cleanup();
  }
  return rows;
}

/** CPU ms (user + system, this process) per call of `fn`, over `n` calls after one warm-up. */
async function cpuPer(n: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000 / n;
}

async function bloated(): Promise<Record<string, string>[]> {
  const { bloatedKey } = await import('../test/helpers/keycraft.js');
  const { forgedIssuerPackets, encryptPackets } = await import('../test/helpers/craft.js');
  const { testKey, signerMap } = await import('../test/helpers/keys.js');
  const { open } = await import('../protocol/envelope.js');
  const { encodePayload } = await import('../protocol/payload.js');
  const { directoryOf } = await import('../server/users.js');
  const { parseKey, describeKey } = await import('../keyring/inspect.js');
  const { minimalKey } = await import('../keyring/minimize.js');
  const { serverIdentity } = await import('../protocol/envelope.js');
  const server = await testKey('bench-bloat-server');
  const mallory = await testKey('bench-bloat-mallory');
  const identity = await serverIdentity(server.privateKey);
  const rows: Record<string, string>[] = [];
  let clean = { before: 0, now: 0 };
  for (const garbage of [0, 200, 800, 3000]) {
    const victim = await testKey(`bench-bloat-${garbage}`);
    const key = garbage === 0 ? victim.publicKey : await bloatedKey(victim.publicKey, garbage);
    const armored = key.armor();
    const forged = async () => {
      const now = new Date();
      const payload = encodePayload(freshPayload({ server, now }));
      const inner = await forgedIssuerPackets(payload, mallory.privateKey, victim.publicKey, now);
      return encryptPackets(inner, server.publicKey, { now });
    };
    const packets = await Promise.all(Array.from({ length: 6 }, forged));
    const perDatagram = async (lookupSigner: Parameters<typeof open>[1]['lookupSigner']) => {
      let i = 0;
      return cpuPer(5, () =>
        open(packets[i++ % packets.length] as Uint8Array, {
          server: identity,
          lookupSigner,
          now: new Date(),
          maxSkewSeconds: 120,
        }).catch((e: Error & { code?: string }) => e.code),
      );
    };
    const reparsed = await openpgp.readKey({ armoredKey: armored });
    const before = await perDatagram(signerMap([reparsed as openpgp.PublicKey]));
    const users = directoryOf(new Map([[victim.fingerprint, recordFor(victim, { publicKey: armored })]]));
    const now = await perDatagram(users.lookupSigner);
    if (garbage === 0) clean = { before, now };
    const t0 = performance.now();
    await describeKey(await openpgp.readKey({ armoredKey: armored }), new Date());
    const enrollBefore = performance.now() - t0;
    const t1 = performance.now();
    const outcome = await parseKey(armored)
      .then((k) => minimalKey(k, new Date()))
      .then(
        () => 'minimized',
        (e: Error & { code?: string }) => `refused (${e.code})`,
      );
    const enrollNow = performance.now() - t1;
    rows.push({
      'bloated key': garbage === 0 ? 'clean key' : `${garbage} garbage self-signatures`,
      'CPU ms/forged datagram, key as given (before)': before.toFixed(2),
      'CPU ms/forged datagram, key as held now': now.toFixed(2),
      'now vs clean': (now / Math.max(clean.now, 1e-3)).toFixed(2),
      'spa-keys add reads the key: ms before / now': `${enrollBefore.toFixed(0)} / ${enrollNow.toFixed(0)} ${outcome}`,
    });
  }
  return rows;
}

async function main(): Promise<void> {
  if (values.only === 'bloated') {
    console.log(`spa bloated-key benchmark, ${new Date().toISOString()}`);
    console.table(await bloated());
    return;
  }
  const tmp = tempDir('spa-bench-keys-');
  const dir = tmp.path;
  try {
    const stateDirs = { one: join(dir, 'one'), many: join(dir, 'many') };
    await initServer(stateDirs.many);
    const server = fromPrivateKey('server', await loadServerKey(stateDirs.many));
    console.error(`generating ${N} key pairs...`);
    const t0 = performance.now();
    const keys = await generate(N);
    const genS = (performance.now() - t0) / 1000;
    const file = (recs: KeyRecord[]) =>
      `${JSON.stringify({ version: 1, keys: Object.fromEntries(recs.map((r) => [r.fingerprint, r])) }, null, 2)}\n`;
    await writeFileAtomic(allowlistPath(stateDirs.many), file(keys.map(recordOf)), 0o600);
    // the same server key in both state dirs
    const { cpSync, writeFileSync } = await import('node:fs');
    cpSync(stateDirs.many, stateDirs.one, { recursive: true });
    await writeFileAtomic(allowlistPath(stateDirs.one), file([recordOf(keys[0] as TestKey, 0)]), 0o600);
    for (const d of [stateDirs.one, stateDirs.many]) {
      writeFileSync(join(d, 'bench.json'), JSON.stringify({ rate_burst: 10_000, rate_per_second: 10_000 }));
    }
    console.log(
      `spa many-keys benchmark: ${N} enrolled keys (generated in ${genS.toFixed(0)} s), ${KNOCKS} knocks per case, ${new Date().toISOString()}`,
    );
    console.table(await inProcess(server, keys));
    console.table(await bloated());
    if (isRoot()) console.table(await daemon(stateDirs, server, keys));
    else console.log('(not root: the real-daemon part is skipped)');
  } finally {
    await tmp.remove();
  }
}

await main();
