/**
 * The npm package as an admin installs it: `npm pack` in a clean copy of the sources (prepack
 * builds dist/, the man pages and the completions there), `npm install -g` of the tarball into
 * a temporary prefix, then only the installed binaries, run from a directory that is neither the
 * repository nor the prefix. Root only: the knock runs in network namespaces.
 *
 *   <id>-client 198.51.100.2  ──knock (installed spa)──►  <id>-server 198.51.100.1
 *                                                          installed spad + echo service on tcp/22
 *
 * The install needs the npm registry (runtime dependencies; `cap` is compiled by its install
 * script). Everything goes under one temporary directory, removed at the end; the host keeps no
 * trace but npm's download cache.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTopology, netnsUnavailable, type Topology, waitFor } from '../../scripts/netns.js';
import { probeOne, startServices } from './firewall-harness.js';

/** The repository (this file runs from dist/test/e2e/). */
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SOURCES = [
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'README.md',
  'protocol',
  'cli',
  'keyring',
  'server',
  'client',
  'scripts',
  'docs',
];
const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      {
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 32 * 1024 * 1024,
        env: { ...process.env, ...opts.env },
      },
      (err, stdout, stderr) =>
        resolve({
          code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
          stdout: String(stdout),
          stderr: String(stderr),
        }),
    );
    // a program that reads no stdin (man -w) may exit before this is written: EPIPE is no failure
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
  });
}

async function must(cmd: string, args: readonly string[], opts: Parameters<typeof run>[2]): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().slice(-2000)}`);
  return r.stdout;
}

const why = await netnsUnavailable();

describe(
  'the npm package, installed into a fresh global prefix',
  { skip: why ?? false, timeout: 600_000 },
  () => {
    let tmp: string;
    let prefix: string;
    let elsewhere: string;
    let tarball: string;
    let packed: string[] = [];
    let topo: Topology | null = null;
    const children: ChildProcess[] = [];
    const bin = (name: 'spa' | 'spad' | 'spa-keys'): string => join(prefix, 'bin', name);
    const installed = (): string => join(prefix, 'lib', 'node_modules', 'spa');

    before(async () => {
      tmp = mkdtempSync(join(tmpdir(), 'spa-pkg-'));
      // as under /usr/local: spad's verifier runs as an unprivileged user and must read the package
      chmodSync(tmp, 0o755);
      const src = join(tmp, 'src');
      prefix = join(tmp, 'prefix');
      elsewhere = join(tmp, 'elsewhere');
      mkdirSync(elsewhere);
      for (const s of SOURCES) cpSync(join(REPO, s), join(src, s), { recursive: true });
      // the dev tools prepack needs (tsc, marked-man); they do not end up in the package
      symlinkSync(join(REPO, 'node_modules'), join(src, 'node_modules'));
      const out = await must('npm', ['pack', '--json', '--pack-destination', tmp], {
        cwd: src,
        timeoutMs: 300_000,
      });
      const info = JSON.parse(out) as Array<{ filename: string; files: Array<{ path: string }> }>;
      tarball = join(tmp, info[0]?.filename ?? 'missing.tgz');
      packed = (info[0]?.files ?? []).map((f) => f.path);
      await must(
        'npm',
        [
          'install',
          '-g',
          '--prefix',
          prefix,
          '--no-audit',
          '--no-fund',
          '--prefer-offline',
          '--allow-scripts=cap',
          tarball,
        ],
        { cwd: elsewhere, timeoutMs: 400_000 },
      );
    });

    after(async () => {
      for (const c of children) c.kill('SIGKILL');
      await topo?.destroy();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    test('the tarball ships built JavaScript, man pages and completions, and no tests, scripts or sources', () => {
      for (const f of [
        'dist/client/cli.js',
        'dist/server/cli.js',
        'dist/keyring/cli.js',
        'dist/cli/conventions.js',
        'man/spa.1',
        'man/spad.8',
        'man/spa-keys.8',
        'completion/bash/spa',
        'completion/zsh/_spad',
      ]) {
        assert.ok(packed.includes(f), `${f} is in the package`);
      }
      const stray = packed.filter(
        (f) => /^dist\/(test|scripts)\//.test(f) || f.endsWith('.ts') || f.startsWith('node_modules/'),
      );
      assert.deepEqual(stray, []);
    });

    test('only the runtime dependencies are installed, with cap built by its install script', () => {
      const deps = readdirSync(join(installed(), 'node_modules'));
      for (const d of ['commander', 'openpgp', 'cap', 'zod']) assert.ok(deps.includes(d), `${d} installed`);
      for (const d of ['typescript', 'eslint', 'prettier', 'marked-man', 'fast-check'])
        assert.ok(!deps.includes(d), `${d} not installed`);
      assert.ok(existsSync(join(installed(), 'node_modules', 'cap', 'build', 'Release', 'cap.node')));
    });

    test('the man pages are installed for man to find', async () => {
      for (const [sec, page] of [
        ['1', 'spa'],
        ['8', 'spad'],
        ['8', 'spa-keys'],
      ] as const) {
        const r = await run('man', ['-w', `${page}(${sec})`], {
          cwd: elsewhere,
          env: { MANPATH: join(prefix, 'share', 'man') },
        });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stdout.startsWith(prefix), r.stdout);
      }
    });

    test(
      'the unit the installed spad writes for itself passes systemd-analyze verify, man page included',
      { skip: ANALYZE ? false : 'systemd-analyze is not installed (scripts/setup.sh installs systemd)' },
      async () => {
        const unit = await must(
          bin('spad'),
          ['install-service', '--print', '--interface', 'eth0', '--state-dir', join(tmp, 'state')],
          { cwd: elsewhere },
        );
        assert.match(
          unit,
          new RegExp(`^ExecStart=${process.execPath} ${installed()}/dist/server/cli\\.js `, 'm'),
        );
        const file = join(tmp, 'spad.service');
        writeFileSync(file, unit);
        const r = await run(ANALYZE as string, ['verify', file], {
          cwd: elsewhere,
          env: { MANPATH: join(prefix, 'share', 'man') },
        });
        assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
        assert.equal(`${r.stdout}${r.stderr}`.trim(), '');
      },
    );

    test('from another directory: spa-keys init and add with flags, spad --check, and a knock that opens tcp/22', async () => {
      const state = join(tmp, 'state');
      const home = join(tmp, 'alice');
      const init = await must(bin('spa-keys'), ['init', '--state-dir', state], { cwd: elsewhere });
      assert.match(init, /fingerprint:\s*[0-9A-F]{40}/);
      const pub = await must(bin('spa-keys'), ['gen', '--user', 'alice', '--home', home], { cwd: elsewhere });
      const serverAsc = await must(bin('spa-keys'), ['export-server', '--state-dir', state], {
        cwd: elsewhere,
      });
      await must(bin('spa-keys'), ['import', '-', '--home', home], { cwd: elsewhere, input: serverAsc });
      await must(
        bin('spa-keys'),
        [
          'add',
          '--state-dir',
          state,
          '--user',
          'alice',
          '--key',
          '-',
          '--open',
          'tcp/22',
          '--timeout',
          '5',
          '--yes',
        ],
        { cwd: elsewhere, input: pub },
      );
      const check = await must(
        bin('spad'),
        ['--check', '--interface', 'eth0', '--protect', 'tcp/22', '--state-dir', state],
        { cwd: elsewhere },
      );
      assert.match(check, /^spad: ok: server key [0-9A-F]{40}, 1 enrolled key\(s\)/);

      topo = await createTopology();
      children.push(await startServices(topo.server, [22], []));
      // spad runs as the unit says: its ExecStart, under its CapabilityBoundingSet and
      // NoNewPrivileges (setpriv does what systemd would; the rest of the sandbox needs systemd)
      const unit = await must(
        bin('spad'),
        [
          'install-service',
          '--print',
          '--interface',
          'eth0',
          '--protect',
          'tcp/22',
          '--firewall',
          'nftables',
          '--state-dir',
          state,
        ],
        { cwd: elsewhere },
      );
      const directive = (name: string): string[] =>
        (new RegExp(`^${name}=(.*)$`, 'm').exec(unit)?.[1] ?? '').split(' ').filter(Boolean);
      assert.deepEqual(directive('NoNewPrivileges'), ['yes']);
      const caps = directive('CapabilityBoundingSet').map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
      const asUnit = [
        '-C',
        elsewhere,
        'setpriv',
        `--bounding-set=-all,${caps.join(',')}`,
        '--no-new-privs',
        '--',
      ];
      const pre = await topo.server.exec('env', [...asUnit, ...directive('ExecStartPre')], {
        timeoutMs: 60_000,
      });
      assert.equal(pre.code, 0, pre.stderr);
      const spad = topo.server.spawn('env', [...asUnit, ...directive('ExecStart')], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(spad);
      let log = '';
      let errText = '';
      spad.stdout?.on('data', (c: Buffer) => (log += c.toString()));
      spad.stderr?.on('data', (c: Buffer) => (errText += c.toString()));
      const events = (): string[] =>
        log
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => {
            try {
              return (JSON.parse(l) as { event: string }).event;
            } catch {
              return 'unparsed';
            }
          });
      assert.ok(
        await waitFor(async () => events().includes('start'), 15_000, 50),
        `spad started: ${errText.slice(-500)}`,
      );

      const ssh = (): Promise<string> => probeOne(topo!.client, ['tcp', topo!.server.ipv4, 22], 600);
      assert.equal(await ssh(), 'closed', 'tcp/22 is closed before the knock');
      const knock = await topo.client.exec(
        'env',
        ['-C', elsewhere, bin('spa'), '--home', home, '-A', 'tcp/22', topo.server.ipv4],
        { timeoutMs: 30_000 },
      );
      assert.equal(knock.code, 0, knock.stderr);
      assert.ok(
        await waitFor(async () => events().includes('grant'), 10_000, 50),
        `a grant: ${log.slice(-1000)}`,
      );
      assert.equal(await ssh(), 'open', 'tcp/22 answers the client after the knock');

      spad.kill('SIGTERM');
      await new Promise<void>((r) => {
        if (spad.exitCode !== null || spad.signalCode !== null) return r();
        const t = setTimeout(r, 5000);
        spad.once('exit', () => {
          clearTimeout(t);
          r();
        });
      });
    });
  },
);
