/**
 * `npm run demo`: the whole product in one story, in throw-away network namespaces.
 *
 *   client 198.51.100.2 ──┐
 *   attacker 198.51.100.3 ─┼── bridge ── server 198.51.100.1: spad + a service on tcp/22
 *
 * An admin creates the server key, a user makes a key pair, the admin enrolls it; spad starts
 * with tcp/22 protected; the user's connection is refused, the user knocks with `spa`, connects;
 * the attacker replays the captured knock and is refused. Everything is removed at the end, and
 * on SIGINT, SIGTERM or SIGHUP too (the same steps, scripts/cleanup.ts).
 * Only the real binaries are used (spa-keys, spad, spa), as a person would run them.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { interruptedBy, onInterrupt, tempDir } from './cleanup.js';
import { createTopology, type Host, netnsUnavailable, run, waitFor } from './netns.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const NODE = process.execPath;
const bin = (name: string): string => join(ROOT, name);
const SPA = bin('client/cli.js');
const SPAD = bin('server/cli.js');
const KEYS = bin('keyring/cli.js');

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s: string): void => console.log(`\n${bold(`== ${s}`)}`);
const show = (who: string, cmd: string): void => console.log(`${who}$ ${cmd}`);
const indent = (s: string): string =>
  s
    .trimEnd()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');

async function sh(
  who: string,
  host: Host | null,
  args: string[],
  shown: string,
  opts: { input?: string } = {},
): Promise<string> {
  show(who, shown);
  const r = host
    ? await host.exec(NODE, args, { input: opts.input })
    : await run(NODE, args, { input: opts.input });
  const out = `${r.stdout}${r.stderr}`;
  if (out.trim()) console.log(indent(out));
  if (r.code !== 0) throw new Error(`'${shown}' exited ${r.code}`);
  return r.stdout;
}

const SERVICE = `require('net').createServer((s) => { s.end('SSH-2.0-OpenSSH_9.2 (demo service on the protected port)\\n'); }).listen({ port: 22, host: '::' }, () => console.log('ready'));`;
const CONNECT = `const s = require('net').connect({ host: process.argv[1], port: 22 });
const t = setTimeout(() => { console.log('no answer after 1.5 s: the port is closed to us'); process.exit(3); }, 1500);
s.on('data', (d) => { clearTimeout(t); process.stdout.write('connected: ' + d); s.destroy(); });
s.on('error', (e) => { clearTimeout(t); console.log('error ' + e.code); process.exit(3); });`;

async function tryConnect(who: string, h: Host, to: string): Promise<boolean> {
  show(who, `nc ${to} 22   # (a node one-liner: connect and print the banner)`);
  const r = await h.exec(NODE, ['-e', CONNECT, to]);
  console.log(indent(r.stdout));
  return r.code === 0;
}

async function main(): Promise<number> {
  const why = await netnsUnavailable();
  if (why) {
    console.error(`spa: error: the demo ${why}`);
    return 2;
  }
  const tmp = tempDir('spa-demo-');
  const dir = tmp.path;
  const state = join(dir, 'etc-spa');
  const home = join(dir, 'alice-home');
  step('a network: server 198.51.100.1, client 198.51.100.2, attacker 198.51.100.3 (network namespaces)');
  const topo = await createTopology();
  const children: ChildProcess[] = [];
  const stopChildren = onInterrupt(async () => {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    for (const c of children) c.kill('SIGKILL');
  });
  try {
    const { server, client, attacker } = topo;

    step('admin: create the server key');
    await sh('admin', null, [KEYS, 'init', '--state-dir', state], 'spa-keys init');

    step('alice: make her key pair and import the server public key the admin gave her');
    const pub = await sh(
      'alice',
      null,
      [KEYS, 'gen', '--user', 'alice', '--home', home],
      'spa-keys gen --user alice > alice.asc',
    );
    writeFileSync(join(dir, 'alice.asc'), pub);
    await sh(
      'alice',
      null,
      [KEYS, 'import', join(state, 'server.asc'), '--home', home],
      'spa-keys import server.asc',
    );

    step('admin: enroll alice for tcp/22, 15 s per knock');
    await sh(
      'admin',
      null,
      [
        KEYS,
        'add',
        '--state-dir',
        state,
        '--user',
        'alice',
        '--key',
        join(dir, 'alice.asc'),
        '--open',
        'tcp/22',
        '--timeout',
        '15',
        '--yes',
      ],
      'spa-keys add --user alice --key alice.asc --open tcp/22 --timeout 15 --yes',
    );
    await sh('admin', null, [KEYS, 'list', '--state-dir', state], 'spa-keys list');

    step('server: a service on tcp/22, and spad protecting it (pcap on eth0, nftables)');
    const svc = server.spawn(NODE, ['-e', SERVICE], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(svc);
    show('server', 'spad --interface eth0 --protect tcp/22 --firewall nftables');
    const audit: string[] = [];
    const spad = server.spawn(
      NODE,
      [SPAD, '--state-dir', state, '--interface', 'eth0', '--protect', 'tcp/22', '--firewall', 'nftables'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(spad);
    spad.stdout?.on('data', (c: Buffer) => audit.push(...c.toString().split('\n').filter(Boolean)));
    spad.stderr?.on('data', (c: Buffer) => process.stderr.write(c));
    if (!(await waitFor(async () => audit.some((l) => l.includes('"start"')), 15_000)))
      throw new Error('spad did not start');
    const printAudit = (from: number): number => {
      for (const l of audit.slice(from)) {
        try {
          const o = JSON.parse(l) as Record<string, unknown>;
          const { level: _l, time: _t, svc: _s, ...rest } = o;
          console.log(indent(`spad audit: ${JSON.stringify(rest)}`));
        } catch {
          console.log(indent(l));
        }
      }
      return audit.length;
    };
    let seen = printAudit(0);

    step('alice tries to connect before knocking');
    if (await tryConnect('alice', client, server.ipv4)) throw new Error('the port was open before the knock');

    step('alice knocks: one signed, encrypted UDP datagram; nothing answers');
    const saved = join(dir, 'knock.bin');
    await sh(
      'alice',
      client,
      [SPA, '-A', 'tcp/22', '--home', home, '--save-packet', saved, '-v', server.ipv4],
      `spa -A tcp/22 -v ${server.ipv4}`,
    );
    await waitFor(async () => audit.length > seen, 3000);
    seen = printAudit(seen);

    step('alice connects');
    if (!(await tryConnect('alice', client, server.ipv4))) throw new Error('the knock did not open the port');

    step('the attacker, from another address, still finds the port closed');
    if (await tryConnect('attacker', attacker, server.ipv4)) throw new Error('the attacker got in');

    step('the attacker replays the captured knock datagram: refused, nothing opens');
    const hex = readFileSync(saved).toString('hex');
    show('attacker', `send the same ${hex.length / 2} bytes to ${server.ipv4}:62201`);
    const SEND = `const d=require('dgram').createSocket('udp4');d.send(Buffer.from(process.argv[1],'hex'),62201,process.argv[2],()=>d.close());`;
    await attacker.exec(NODE, ['-e', SEND, hex, server.ipv4]);
    await waitFor(async () => audit.length > seen, 3000);
    seen = printAudit(seen);
    if (await tryConnect('attacker', attacker, server.ipv4)) throw new Error('the replay opened the port');

    step('admin: the daemon status');
    await sh('admin', null, [SPAD, 'status', '--state-dir', state], 'spad status');

    step('done: the grant expires by itself in the kernel (nftables set timeout); cleaning up');
    return 0;
  } finally {
    await stopChildren();
    await topo.destroy();
    await tmp.remove();
  }
}

main().then(
  (code) => {
    if (code === 0)
      console.log(`\n${bold('demo finished: refused, knocked, connected, replay refused, all cleaned up')}`);
    process.exitCode = code;
  },
  (err: unknown) => {
    // on a signal, cleanup.ts says so and ends the process; this is a step it cut short
    if (!interruptedBy()) console.error(`spa: error: demo failed: ${(err as Error).message}`);
    process.exitCode = 1;
  },
);
