/**
 * Bench: daemon start-up cost of the allowlist with 10,000 enrolled keys (docs/benchmarks.md "Targets": "start
 * with 10,000 keys < 2 s"). Writes a keyring.json of N records to a temp dir, then times
 * `loadAllowlist` (read + JSON.parse + zod validation of every field + index build), a signer
 * lookup, and the first `publicKeyOf` (lazy key parse). Prints figures; asserts nothing.
 *
 * Records carry distinct fingerprints and one real armored ed25519 public key each (the same key
 * text, re-used: generating 10,000 keys would take minutes and key text is not parsed at load, so
 * only its size matters). Usage: node dist/scripts/bench-keyring.js [N]
 */
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { allowlistPath, initServer, loadAllowlist, publicKeyOf } from '../keyring/allowlist.js';
import { writeFileAtomic } from '../keyring/atomic.js';
import { generateKeyPair } from '../keyring/generate.js';
import type { AllowlistFile, KeyRecord } from '../keyring/schema.js';
import { tempDir } from './cleanup.js';

const n = Number(process.argv[2] ?? 10_000);
const tmp = tempDir('spa-bench-keyring-');
const dir = tmp.path;
try {
  await initServer(dir);
  const key = await generateKeyPair({
    type: 'curve25519',
    userId: { name: 'bench', email: 'bench@example.test' },
  });
  const file: AllowlistFile = { version: 1, keys: {} };
  for (let i = 0; i < n; i++) {
    // record 0 holds the real key's fingerprint so publicKeyOf can be timed on it
    const fpr = i === 0 ? key.fingerprint : i.toString(16).toUpperCase().padStart(40, '0');
    const sub = `F${i.toString(16).toUpperCase().padStart(39, '0')}`;
    const rec: KeyRecord = {
      fingerprint: fpr,
      username: `user${i}`,
      publicKey: key.publicKeyArmored,
      signingFingerprints: [fpr, sub],
      userIds: [`User ${i} <user${i}@example.test>`],
      algorithm: 'ed25519',
      createdAt: new Date().toISOString(),
      enabled: i % 10 !== 0,
      expiresAt: i % 3 === 0 ? '2099-01-01T00:00:00.000Z' : null,
      sources: i % 2 === 0 ? 'any' : ['198.51.100.0/24', '2001:db8::/32'],
      openPorts: ['tcp/22', 'udp/53'],
      requireSourceAddress: true,
      defaultTimeout: 30,
      maxTimeout: 300,
      command:
        i % 5 === 0
          ? { regex: 'backup-run (home|etc)', runAs: 'backup', timeoutSeconds: 60, openPorts: [] }
          : null,
    };
    file.keys[fpr] = rec;
  }
  await writeFileAtomic(allowlistPath(dir), `${JSON.stringify(file, null, 2)}\n`, 0o600);
  const size = (await stat(allowlistPath(dir))).size;

  const times: number[] = [];
  let loaded = await loadAllowlist(dir);
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    loaded = await loadAllowlist(dir);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const probe = `F${(n - 1).toString(16).toUpperCase().padStart(39, '0')}`;
  const t1 = performance.now();
  let hits = 0;
  for (let i = 0; i < 1_000_000; i++) if (loaded.bySigner.get(probe)) hits++;
  const lookupNs = ((performance.now() - t1) * 1e6) / 1_000_000;
  const first = loaded.records.values().next().value as KeyRecord;
  const t2 = performance.now();
  await publicKeyOf(first);
  const parseMs = performance.now() - t2;

  console.log(`keyring bench: ${n} records, keyring.json ${(size / 1e6).toFixed(1)} MB`);
  console.log(
    `  loadAllowlist (read + parse + validate + index): median ${times[2]?.toFixed(0)} ms, min ${times[0]?.toFixed(0)} ms, max ${times[4]?.toFixed(0)} ms`,
  );
  console.log(`  signer lookup by fingerprint: ${lookupNs.toFixed(0)} ns (${hits} hits)`);
  console.log(`  first publicKeyOf (lazy parse of one key): ${parseMs.toFixed(1)} ms`);
} finally {
  await tmp.remove();
}
