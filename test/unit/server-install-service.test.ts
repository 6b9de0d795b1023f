/**
 * `spad install-service`: the systemd unit it writes passes `systemd-analyze verify`, carries the
 * hardening SECURITY.md "The systemd unit" lists, and no flag value can add a directive to it;
 * the install step creates the verifier's account only when it is missing. Host accounts are
 * never touched here: the account functions are fakes, the files go to a temporary directory.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CAPABILITIES,
  type InstallDeps,
  installService,
  renderUnit,
  type ServiceSpec,
  serviceSpec,
  systemdQuote,
} from '../../server/install-service.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'spa-install-service-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));

function verify(unitFile: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(ANALYZE ?? 'systemd-analyze', ['verify', '--man=no', unitFile], (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

const spec = (over: Partial<ServiceSpec> = {}): ServiceSpec => ({
  node: process.execPath,
  spad: join(ROOT, 'server/cli.js'),
  stateDir: join(dir, 'state'),
  daemonArgs: ['--interface', 'eth0', '--protect', 'tcp/22'],
  ...over,
});

function fakeAccounts(existing: string[]): InstallDeps & { created: string[] } {
  const created: string[] = [];
  return {
    created,
    userExists: async (n) => existing.includes(n) || created.includes(n),
    createUser: async (n) => {
      created.push(n);
    },
  };
}

test(
  'the unit for this installation passes systemd-analyze verify without a warning',
  { skip: ANALYZE ? false : 'systemd-analyze is not installed (scripts/setup.sh installs systemd)' },
  async () => {
    const file = join(dir, 'spad.service');
    writeFileSync(
      file,
      renderUnit(serviceSpec({ interface: 'eth0', protect: 'tcp/22,udp/53', stateDir: join(dir, 's') })),
    );
    const r = await verify(file);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out.trim(), '', 'no warnings');
  },
);

test('the unit runs the installed node and cli.js by absolute path, --check first', () => {
  const text = renderUnit(spec());
  const start = /^ExecStart=(.*)$/m.exec(text)?.[1];
  assert.equal(
    start,
    `${process.execPath} ${join(ROOT, 'server/cli.js')} --state-dir ${join(dir, 'state')} --interface eth0 --protect tcp/22`,
  );
  assert.match(text, /^ExecStartPre=\S+ \S+ --state-dir \S+ --check --interface eth0 --protect tcp\/22$/m);
});

test('the unit keeps exactly the capabilities spad needs, and its sandbox', () => {
  const text = renderUnit(spec());
  const caps = /^CapabilityBoundingSet=(.*)$/m.exec(text)?.[1]?.split(' ');
  assert.deepEqual(caps?.sort(), CAPABILITIES.map(([c]) => c).sort());
  assert.ok(caps?.includes('CAP_SETPCAP'), 'setpriv needs CAP_SETPCAP to drop the bounding set');
  for (const line of [
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    `ReadWritePaths=${join(dir, 'state')}`,
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET',
    'SystemCallFilter=@system-service',
    'SystemCallErrorNumber=EPERM',
    'SystemCallArchitectures=native',
    'MemoryDenyWriteExecute=no',
    'AmbientCapabilities=',
    'UMask=0077',
  ]) {
    assert.ok(text.split('\n').includes(line), `unit has ${line}`);
  }
});

test('an audit log file makes its directory writable and is passed by absolute path', () => {
  const s = serviceSpec({ udpServer: true, auditLog: 'logs/audit.jsonl', stateDir: '/etc/spa' });
  assert.deepEqual(s.readWritePaths, [join(process.cwd(), 'logs')]);
  assert.deepEqual(s.daemonArgs, ['--udp-server', '--audit-log', join(process.cwd(), 'logs/audit.jsonl')]);
});

test('--cluster goes into the unit as checked and normalized; a password in it is refused', () => {
  const s = serviceSpec({ udpServer: true, cluster: 'redis://203.0.113.10:6379', stateDir: '/etc/spa' });
  assert.deepEqual(s.daemonArgs, ['--udp-server', '--cluster', 'redis://203.0.113.10:6379/0']);
  assert.throws(
    () =>
      serviceSpec({ udpServer: true, cluster: 'redis://:secret@203.0.113.10:6379', stateDir: '/etc/spa' }),
    /password in the URL/,
  );
});

test('a flag value with a newline cannot add a directive to the unit', () => {
  assert.throws(
    () => renderUnit(spec({ daemonArgs: ['--interface', 'eth0\nExecStartPost=/bin/sh -c id'] })),
    (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID',
  );
  assert.throws(
    () => renderUnit(spec({ stateDir: '/etc/spa /' })),
    (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID',
    'a space in a path would make the whole file system writable',
  );
});

test('quoting keeps $ and % from being expanded by systemd', () => {
  assert.equal(systemdQuote('eth0'), 'eth0');
  assert.equal(systemdQuote('a b'), '"a b"');
  assert.equal(systemdQuote('$HOME%n"\\'), '"$$HOME%%n\\"\\\\"');
});

test('install-service creates the missing spa user, a 0700 state dir and the unit, then says what to run', async () => {
  const accounts = fakeAccounts([]);
  const unitFile = join(dir, 'units', 'spad.service');
  const lines = await installService({ spec: spec(), unitFile }, accounts);
  assert.deepEqual(accounts.created, ['spa']);
  assert.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700);
  assert.equal(statSync(unitFile).mode & 0o777, 0o644);
  assert.equal(readFileSync(unitFile, 'utf8'), renderUnit(spec()));
  assert.equal(lines.at(-1), 'systemctl daemon-reload && systemctl enable --now spad');
});

test('install-service run again leaves an existing user alone and replaces the unit', async () => {
  const accounts = fakeAccounts(['spa']);
  const unitFile = join(dir, 'units', 'spad.service');
  const lines = await installService({ spec: spec({ daemonArgs: ['--udp-server'] }), unitFile }, accounts);
  assert.deepEqual(accounts.created, []);
  assert.ok(lines.includes('spad: user spa exists'));
  assert.match(readFileSync(unitFile, 'utf8'), /^ExecStart=.* --udp-server$/m);
});
