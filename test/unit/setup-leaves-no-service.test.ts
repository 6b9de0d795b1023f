/**
 * scripts/setup.sh installs Debian packages as root on the developer's host; openssh-server's
 * postinst would start sshd on 0.0.0.0:22 and enable it at every boot. install_without_services
 * must block every service start during the install (policy-rc.d exits 101), disable every
 * service the install enabled (systemd and runit links removed, SysV S links turned into K links),
 * leave what was enabled before alone, and put the admin's own policy-rc.d back: also when
 * apt-get fails or setup is interrupted.
 *
 * The install runs in a fake root (SPA_SETUP_ROOT) with a fake `apt-get` first on PATH that does
 * what a package's maintainer scripts do: creates the enable links (as deb-systemd-helper and
 * update-rc.d do) and asks policy-rc.d whether it may start the service (as invoke-rc.d and
 * deb-systemd-invoke do), recording a start it was allowed to make.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SETUP = fileURLToPath(new URL('../../../scripts/setup.sh', import.meta.url));
const ADMIN_POLICY = '#!/bin/sh\n# the admin allows everything\nexit 0\n';

// The maintainer scripts of a package with a socket-activated daemon, a user socket and an init
// script; FAKE_APT_FAIL=1 makes the install fail after they ran, FAKE_APT_SLEEP waits before
// (after creating apt-install-running).
const FAKE_APT = `#!/bin/bash
set -u
r="$SPA_SETUP_ROOT"
[[ "$1" == update ]] && exit 0
[[ -n "\${FAKE_APT_SLEEP:-}" ]] && { : >"$r/apt-install-running"; sleep "$FAKE_APT_SLEEP"; }
cp "$r/usr/sbin/policy-rc.d" "$r/policy-seen-during-install"
mkdir -p "$r/etc/systemd/system/multi-user.target.wants" "$r/etc/systemd/system/sockets.target.wants" \\
  "$r/etc/systemd/user/sockets.target.wants" "$r/etc/rc2.d" "$r/etc/rc0.d" "$r/etc/service"
ln -s /lib/systemd/system/fakessh.service "$r/etc/systemd/system/multi-user.target.wants/fakessh.service"
ln -s /lib/systemd/system/fakessh.service "$r/etc/systemd/system/fakesshd.service"
ln -s /lib/systemd/system/fakessh.socket "$r/etc/systemd/system/sockets.target.wants/fakessh.socket"
ln -s /usr/lib/systemd/user/agent.socket "$r/etc/systemd/user/sockets.target.wants/agent.socket"
ln -s ../init.d/fakessh "$r/etc/rc2.d/S01fakessh"
ln -s ../init.d/fakessh "$r/etc/rc0.d/K01fakessh"
ln -s /etc/sv/fakessh "$r/etc/service/fakessh"
for unit in fakessh.service fakessh.socket; do
  "$r/usr/sbin/policy-rc.d" "$unit" start
  [[ $? -eq 101 ]] || echo "$unit" >>"$r/started"
done
[[ -n "\${FAKE_APT_FAIL:-}" ]] && exit 100
exit 0
`;

let root: string;
let bin: string;

function link(target: string, at: string): void {
  mkdirSync(dirname(join(root, at)), { recursive: true });
  symlinkSync(target, join(root, at));
}

function isLink(at: string): boolean {
  try {
    return lstatSync(join(root, at)).isSymbolicLink();
  } catch {
    return false;
  }
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, SPA_SETUP_ROOT: root, PATH: `${bin}:${process.env.PATH ?? ''}`, ...extra };
}

function install(extra: Record<string, string> = {}): { status: number | null; stdout: string } {
  const r = spawnSync('bash', ['-c', 'source "$1" && install_without_services fakessh', 'bash', SETUP], {
    env: env(extra),
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout + r.stderr };
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'spa-setup-root-'));
  bin = join(root, 'fake-bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'apt-get'), FAKE_APT);
  chmodSync(join(bin, 'apt-get'), 0o755);
  // enabled before setup ran: must stay
  link('/lib/systemd/system/cron.service', 'etc/systemd/system/multi-user.target.wants/cron.service');
  link('../init.d/cron', 'etc/rc2.d/S01cron');
  mkdirSync(join(root, 'usr/sbin'), { recursive: true });
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

function assertNothingEnabledByTheInstall(): void {
  assert.ok(!existsSync(join(root, 'started')), `services started: ${readSafe('started')}`);
  for (const at of [
    'etc/systemd/system/multi-user.target.wants/fakessh.service',
    'etc/systemd/system/fakesshd.service',
    'etc/systemd/system/sockets.target.wants/fakessh.socket',
    'etc/systemd/user/sockets.target.wants/agent.socket',
    'etc/service/fakessh',
    'etc/rc2.d/S01fakessh',
  ]) {
    assert.ok(!isLink(at), `${at} is still there`);
  }
  assert.ok(isLink('etc/rc2.d/K01fakessh'), 'the SysV start link became a stop link');
  assert.ok(isLink('etc/rc0.d/K01fakessh'), 'stop links are left alone');
  assert.ok(isLink('etc/systemd/system/multi-user.target.wants/cron.service'), 'cron was enabled before');
  assert.ok(isLink('etc/rc2.d/S01cron'), 'cron was enabled before');
}

function readSafe(at: string): string {
  try {
    return readFileSync(join(root, at), 'utf8');
  } catch {
    return '';
  }
}

test('setup install starts no service and disables every service the install enabled', () => {
  const r = install();
  assert.equal(r.status, 0, r.stdout);
  assertNothingEnabledByTheInstall();
  assert.match(r.stdout, /disabled what the install enabled: \/etc\/systemd\/system\/fakesshd\.service/);
  assert.match(r.stdout, /disabled what the install enabled: \/etc\/rc2\.d\/S01fakessh/);
  assert.ok(!existsSync(join(root, 'usr/sbin/policy-rc.d')), 'no policy-rc.d before, none after');
});

test("setup install puts the admin's own policy-rc.d back, unchanged", () => {
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), ADMIN_POLICY, { mode: 0o755 });
  const r = install();
  assert.equal(r.status, 0, r.stdout);
  assertNothingEnabledByTheInstall();
  assert.match(readSafe('policy-seen-during-install'), /exit 101/);
  assert.equal(readSafe('usr/sbin/policy-rc.d'), ADMIN_POLICY);
  assert.equal(lstatSync(join(root, 'usr/sbin/policy-rc.d')).mode & 0o777, 0o755);
  assert.ok(!existsSync(join(root, 'usr/sbin/policy-rc.d.spa-setup-saved')));
});

test('setup install that fails still disables what it enabled and restores policy-rc.d', () => {
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), ADMIN_POLICY, { mode: 0o755 });
  const r = install({ FAKE_APT_FAIL: '1' });
  assert.equal(r.status, 100, r.stdout);
  assertNothingEnabledByTheInstall();
  assert.equal(readSafe('usr/sbin/policy-rc.d'), ADMIN_POLICY);
});

test('setup interrupted by SIGTERM during the install still undoes it', async () => {
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), ADMIN_POLICY, { mode: 0o755 });
  const child = spawn('bash', ['-c', 'source "$1" && install_without_services fakessh', 'bash', SETUP], {
    env: env({ FAKE_APT_SLEEP: '2' }),
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  // SIGTERM while apt-get install runs: bash lets it finish (dpkg is not cut in half), then
  // undoes. Wait for the fake apt-get to say it is running (it then sleeps 2 s).
  const running = join(root, 'apt-install-running');
  for (let t = Date.now(); !existsSync(running) && Date.now() - t < 5000;) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.match(readSafe('usr/sbin/policy-rc.d'), /exit 101/, 'the install is under way');
  child.kill('SIGTERM');
  assert.equal(await exited, 143);
  assertNothingEnabledByTheInstall();
  assert.equal(readSafe('usr/sbin/policy-rc.d'), ADMIN_POLICY);
});

test('setup repairs the policy-rc.d left by a run killed with SIGKILL', () => {
  writeFileSync(join(root, 'usr/sbin/policy-rc.d.spa-setup-saved'), ADMIN_POLICY, { mode: 0o755 });
  writeFileSync(
    join(root, 'usr/sbin/policy-rc.d'),
    '#!/bin/sh\n# written by spa scripts/setup.sh for the length of its apt-get install\nexit 101\n',
  );
  const r = install();
  assert.equal(r.status, 0, r.stdout);
  assert.equal(readSafe('usr/sbin/policy-rc.d'), ADMIN_POLICY);
  assert.ok(!existsSync(join(root, 'usr/sbin/policy-rc.d.spa-setup-saved')));
});
