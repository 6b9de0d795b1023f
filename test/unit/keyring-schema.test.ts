/**
 * keyring.json and keys.json validation: every field of a record refused when hand-broken, with
 * the field path in the error, and a corrupt file never rewritten. Also the daemon's load path
 * (maps by fingerprint and by signing subkey).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  addRecord,
  allowlistPath,
  buildRecord,
  initServer,
  loadAllowlist,
  publicKeyOf,
} from '../../keyring/allowlist.js';
import { inspectKey } from '../../keyring/inspect.js';
import { openKeystore } from '../../keyring/keystore.js';
import type { KeyRecord } from '../../keyring/schema.js';
import { ConfigError } from '../../protocol/errors.js';
import { makeKey, runKeys, withTmp } from './keyring-helpers.js';

let shared: { pub: string; priv: string; fpr: string } | undefined;
async function key() {
  if (!shared) {
    const k = await makeKey({ name: 'Alice', email: 'alice@example.test', subkeys: [{}, { sign: true }] });
    shared = { pub: k.publicKey, priv: k.privateKey, fpr: k.fingerprint };
  }
  return shared;
}

async function validRecord(): Promise<KeyRecord> {
  const k = await key();
  const info = await inspectKey(k.pub);
  return buildRecord(
    info,
    k.pub,
    {
      username: 'alice',
      sources: ['198.51.100.0/24', '2001:db8::/32'],
      openPorts: ['tcp/22', 'udp/53'],
      requireSourceAddress: true,
      defaultTimeout: 30,
      maxTimeout: 300,
      expiresAt: '2099-01-01T00:00:00.000Z',
      command: { regex: 'backup-run [a-z]+', runAs: 'backup', timeoutSeconds: 60, openPorts: [] },
    },
    new Date('2026-01-01T00:00:00Z'),
  );
}

/** Writes a file with `mutate` applied to one valid record; expects KEYRING_CORRUPT at `path`. */
async function expectCorrupt(
  mutate: (r: Record<string, unknown>, file: Record<string, unknown>) => void,
  path: RegExp,
): Promise<void> {
  await withTmp(async (dir) => {
    const r = (await validRecord()) as unknown as Record<string, unknown>;
    const file: Record<string, unknown> = { version: 1, keys: { [r.fingerprint as string]: r } };
    mutate(r, file);
    const text = `${JSON.stringify(file, null, 2)}\n`;
    await writeFile(allowlistPath(dir), text);
    await assert.rejects(loadAllowlist(dir), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.code, 'KEYRING_CORRUPT');
      assert.match(e.message, path);
      assert.match(e.message, /keyring\.json/);
      return true;
    });
    assert.equal(await readFile(allowlistPath(dir), 'utf8'), text, 'the file is left as it was');
  });
}

describe('allowlist record validation', () => {
  it('accepts a complete valid record and indexes it by every signing fingerprint', async () => {
    await withTmp(async (dir) => {
      await initServer(dir);
      const r = await validRecord();
      assert.equal(r.signingFingerprints.length, 2, 'primary and the signing subkey');
      await addRecord(dir, r);
      const al = await loadAllowlist(dir);
      assert.equal(al.records.get(r.fingerprint)?.username, 'alice');
      for (const s of r.signingFingerprints) assert.equal(al.bySigner.get(s)?.fingerprint, r.fingerprint);
      assert.ok(Object.isFrozen(al.records.get(r.fingerprint)), 'records handed to the daemon are immutable');
      const pk = await publicKeyOf(r);
      assert.equal(pk.getFingerprint().toUpperCase(), r.fingerprint);
      assert.equal(await publicKeyOf(r), pk, 'parsed once, then cached');
    });
  });

  const cases: [string, (r: Record<string, unknown>) => void, RegExp][] = [
    ['a lowercase fingerprint', (r) => (r.fingerprint = String(r.fingerprint).toLowerCase()), /fingerprint/],
    ['a 39-digit fingerprint', (r) => (r.fingerprint = String(r.fingerprint).slice(1)), /fingerprint/],
    ['a username with a capital and a space', (r) => (r.username = 'Bad User'), /\.username: /],
    ['a username longer than 32', (r) => (r.username = 'a'.repeat(33)), /\.username: /],
    ['a missing username', (r) => delete r.username, /\.username: /],
    ['a public key that is not armored', (r) => (r.publicKey = 'hello'), /\.publicKey: /],
    [
      'a secret key in place of the public key',
      (r) =>
        (r.publicKey = '-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n-----END PGP PRIVATE KEY BLOCK-----\n'),
      /\.publicKey: /,
    ],
    ['no signing fingerprints', (r) => (r.signingFingerprints = []), /\.signingFingerprints: /],
    [
      'a short signing fingerprint',
      (r) => (r.signingFingerprints = ['ABCD']),
      /\.signingFingerprints\[0\]: /,
    ],
    [
      'a duplicated signing fingerprint',
      (r) => (r.signingFingerprints = [r.fingerprint, r.fingerprint]),
      /\.signingFingerprints\[1\]: duplicate/,
    ],
    ['user ids that are not strings', (r) => (r.userIds = [1]), /\.userIds\[0\]: /],
    ['an empty algorithm', (r) => (r.algorithm = ''), /\.algorithm: /],
    ['a creation time that is not ISO', (r) => (r.createdAt = 'yesterday'), /\.createdAt: /],
    ['enabled given as a string', (r) => (r.enabled = 'yes'), /\.enabled: /],
    ['an expiry that is not a date', (r) => (r.expiresAt = '2099-13-45'), /\.expiresAt: /],
    ['sources that are neither any nor a list', (r) => (r.sources = 'all'), /\.sources: /],
    ['an empty source list', (r) => (r.sources = []), /\.sources: /],
    ['a source that is not an address', (r) => (r.sources = ['10.0.0.300/8']), /\.sources\[0\]: /],
    ['a source with host bits set', (r) => (r.sources = ['10.0.0.1/8']), /\.sources\[0\]: .*host bits/],
    [
      'a source not in canonical form',
      (r) => (r.sources = ['2001:DB8::/32']),
      /\.sources\[0\]: .*2001:db8::\/32/,
    ],
    ['a duplicated source', (r) => (r.sources = ['10.0.0.0/8', '10.0.0.0/8']), /\.sources\[1\]: duplicate/],
    ['no open ports', (r) => (r.openPorts = []), /\.openPorts: /],
    ['a port range', (r) => (r.openPorts = ['tcp/20-22']), /\.openPorts\[0\]: .*ranges/],
    ['port 0', (r) => (r.openPorts = ['tcp/0']), /\.openPorts\[0\]: /],
    ['port 65536', (r) => (r.openPorts = ['udp/65536']), /\.openPorts\[0\]: /],
    ['an unknown protocol', (r) => (r.openPorts = ['sctp/22']), /\.openPorts\[0\]: /],
    ['a duplicated port', (r) => (r.openPorts = ['tcp/22', 'tcp/22']), /\.openPorts\[1\]: duplicate/],
    ['requireSourceAddress as a number', (r) => (r.requireSourceAddress = 1), /\.requireSourceAddress: /],
    ['a zero default timeout', (r) => (r.defaultTimeout = 0), /\.defaultTimeout: /],
    ['a fractional timeout', (r) => (r.defaultTimeout = 1.5), /\.defaultTimeout: /],
    ['a max timeout above one day', (r) => (r.maxTimeout = 86_401), /\.maxTimeout: /],
    [
      'a default timeout above the max',
      (r) => {
        r.defaultTimeout = 400;
        r.maxTimeout = 300;
      },
      /\.defaultTimeout: .*exceeds maxTimeout/,
    ],
    [
      'a command regex that does not compile',
      (r) => ((r.command as { regex: string }).regex = 'a('),
      /\.command\.regex: /,
    ],
    ['an empty command regex', (r) => ((r.command as { regex: string }).regex = ''), /\.command\.regex: /],
    [
      'a command run-as name that is not a unix user name',
      (r) => ((r.command as { runAs: string }).runAs = 'Root User'),
      /\.command\.runAs: /,
    ],
    [
      'a command run-as that is not a user name',
      (r) => ((r.command as { runAs: string }).runAs = 'a b'),
      /\.command\.runAs: /,
    ],
    [
      'a command time limit above an hour',
      (r) => ((r.command as { timeoutSeconds: number }).timeoutSeconds = 3601),
      /\.command\.timeoutSeconds: /,
    ],
    [
      'a command port that is invalid',
      (r) => ((r.command as { openPorts: string[] }).openPorts = ['tcp/x']),
      /\.command\.openPorts\[0\]: /,
    ],
    [
      'an unknown field in a command',
      (r) => ((r.command as Record<string, unknown>).shell = true),
      /\.command: .*shell/,
    ],
    ['a misspelt field', (r) => (r.enable = false), /Unrecognized key.*enable/],
  ];
  for (const [what, mutate, path] of cases) {
    it(`refuses ${what}, naming the field`, () => expectCorrupt(mutate, path));
  }

  it('refuses a record filed under another fingerprint', () =>
    expectCorrupt((_r, f) => {
      const keys = f.keys as Record<string, unknown>;
      const [k, v] = Object.entries(keys)[0] as [string, unknown];
      delete keys[k];
      keys['0'.repeat(40)] = v;
    }, /keys\.0{40}\.fingerprint: record filed under/));

  it('refuses one signing key listed under two records', () =>
    expectCorrupt((r, f) => {
      const other = {
        ...r,
        fingerprint: 'F'.repeat(40),
        signingFingerprints: ['F'.repeat(40), r.fingerprint],
      };
      (f.keys as Record<string, unknown>)['F'.repeat(40)] = other;
    }, /signingFingerprints\[1\]: signing key .* is also listed/));

  it('refuses a file of another version', () => expectCorrupt((_r, f) => (f.version = 2), /version: /));

  it('refuses a file that is not JSON and leaves it alone', async () => {
    await withTmp(async (dir) => {
      await writeFile(allowlistPath(dir), '{"version": 1, "keys": {');
      await assert.rejects(loadAllowlist(dir), (e: unknown) => {
        return e instanceof ConfigError && e.code === 'KEYRING_CORRUPT' && /not valid JSON/.test(e.message);
      });
      assert.equal(await readFile(allowlistPath(dir), 'utf8'), '{"version": 1, "keys": {');
    });
  });

  it('an add against a hand-broken file fails with exit 4, names the field and rewrites nothing', async () => {
    await withTmp(async (dir) => {
      await initServer(dir);
      const r = (await validRecord()) as unknown as Record<string, unknown>;
      r.openPorts = ['tcp/22', 'tcp/99999'];
      const text = JSON.stringify({ version: 1, keys: { [r.fingerprint as string]: r } });
      await writeFile(allowlistPath(dir), text);
      const other = await makeKey({ name: 'Bob' });
      await writeFile(join(dir, 'bob.asc'), other.publicKey);
      const res = await runKeys([
        'add',
        '--state-dir',
        dir,
        '--user',
        'bob',
        '--key',
        join(dir, 'bob.asc'),
        '--open',
        'tcp/22',
      ]);
      assert.equal(res.code, 4);
      assert.match(res.stderr, /^spa: error: .*keyring\.json: keys\.[0-9A-F]{40}\.openPorts\[1\]: /m);
      assert.equal(await readFile(allowlistPath(dir), 'utf8'), text);
    });
  });

  it('reports a missing allowlist as not initialised with the init command as hint', async () => {
    await withTmp(async (dir) => {
      await assert.rejects(loadAllowlist(dir), (e: unknown) => {
        return e instanceof ConfigError && e.code === 'NOT_FOUND' && /spa-keys init/.test(e.hint ?? '');
      });
    });
  });
});

describe('client keystore validation', () => {
  it('refuses a keystore whose own key holds a public key in place of the secret key', async () => {
    await withTmp(async (dir) => {
      const k = await key();
      const file = {
        version: 1,
        own: {
          [k.fpr]: {
            fingerprint: k.fpr,
            username: 'alice',
            secretKey: k.pub,
            publicKey: k.pub,
            userIds: [],
            createdAt: new Date().toISOString(),
          },
        },
        servers: {},
      };
      await writeFile(join(dir, 'keys.json'), JSON.stringify(file));
      await assert.rejects(openKeystore(dir), (e: unknown) => {
        return (
          e instanceof ConfigError &&
          e.code === 'KEYRING_CORRUPT' &&
          /own\.[0-9A-F]{40}\.secretKey: /.test(e.message)
        );
      });
    });
  });

  it('refuses a server entry with an unknown field', async () => {
    await withTmp(async (dir) => {
      const k = await key();
      const file = {
        version: 1,
        own: {},
        servers: {
          [k.fpr]: {
            fingerprint: k.fpr,
            publicKey: k.pub,
            userIds: [],
            addedAt: new Date().toISOString(),
            host: 'x',
          },
        },
      };
      await writeFile(join(dir, 'keys.json'), JSON.stringify(file));
      await assert.rejects(openKeystore(dir), (e: unknown) => {
        return (
          e instanceof ConfigError &&
          e.code === 'KEYRING_CORRUPT' &&
          /servers\.[0-9A-F]{40}: .*host/.test(e.message)
        );
      });
    });
  });
});
