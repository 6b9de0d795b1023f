/**
 * The real Debian fwknop client (`/usr/bin/fwknop`, fwknop-client 2.6.10) as an e2e test partner
 * (SPEC.md §11): a GnuPG home per client user holding that user's secret key (from
 * test/e2e/fixtures/fwknop, made by scripts/gen-fwknop-fixture.ts) and the server's public key,
 * and `fwknop` run inside a namespace with no rc file and a private HOME.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Host } from '../../scripts/netns.js';

export const FWKNOP = '/usr/bin/fwknop';
export const FIXTURE = fileURLToPath(new URL('../../../test/e2e/fixtures/fwknop/', import.meta.url));
export type FixtureUser = 'alice' | 'bob' | 'carol' | 'carol-twin';
export const META = JSON.parse(readFileSync(join(FIXTURE, 'keys.json'), 'utf8')) as Record<
  FixtureUser,
  { fingerprint: string; short_id?: string; hmac_key_base64?: string }
>;

/** Why the fwknop e2e tests cannot run here, or null. */
export function fwknopUnavailable(): string | null {
  if (!existsSync(FWKNOP)) return 'fwknop client not installed (scripts/setup.sh installs fwknop-client)';
  return null;
}

export interface GpgHome {
  readonly dir: string;
  kill(): void;
}

/** A GnuPG home (0700) with these armored key files imported. */
export function gpgHome(dir: string, files: readonly string[]): GpgHome {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const f of files) {
    execFileSync('gpg', ['--homedir', dir, '--batch', '--quiet', '--import', f], { stdio: 'ignore' });
  }
  return {
    dir,
    kill() {
      try {
        execFileSync('gpgconf', ['--homedir', dir, '--kill', 'all'], { stdio: 'ignore' });
      } catch {
        // no agent was running
      }
    },
  };
}

export interface KnockOptions {
  readonly home: GpgHome;
  /** Server key fingerprint (encrypt-to). */
  readonly recipient: string;
  /** Signing key fingerprint; null sends an unsigned knock. */
  readonly signer: string | null;
  readonly to: string;
  /** -a address, or 'source' for -s (0.0.0.0). */
  readonly allow: string;
  readonly access?: string;
  readonly hmacBase64?: string;
  readonly extra?: readonly string[];
  /** Also save the packet to this file (-B), to replay its bytes later. */
  readonly save?: string;
}

/** Runs the fwknop client in `from`; resolves with its exit code and output. */
export async function fwknopKnock(
  from: Host,
  o: KnockOptions,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const args = [
    '--no-rc-file',
    '--no-save-args',
    '-A',
    o.access ?? 'tcp/22',
    ...(o.allow === 'source' ? ['-s'] : ['-a', o.allow]),
    '-D',
    o.to,
    '--gpg-recipient-key',
    o.recipient,
    ...(o.signer ? ['--gpg-signer-key', o.signer, '--gpg-no-signing-pw'] : []),
    '--gpg-home-dir',
    o.home.dir,
    ...(o.hmacBase64 ? ['--use-hmac', '--key-base64-hmac', o.hmacBase64] : []),
    ...(o.save ? ['-B', o.save] : []),
    ...(o.extra ?? []),
  ];
  const r = await from.exec(FWKNOP, args, {
    timeoutMs: 30_000,
    env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin', HOME: join(o.home.dir, '..') },
  });
  return r;
}
