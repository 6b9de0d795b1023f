/**
 * Mutation fuzzing of `open()` (protocol/envelope.ts), bounded by time and by count.
 *
 * Seeds: one valid knock per key kind (v4 Ed25519/Curve25519, v6 Ed25519/X25519; RSA-2048 on
 * request), opened at a fixed clock. Each execution mutates a seed with 1-4 random byte-level
 * operations (test/security/mutate.ts), either on the wire bytes ("outer") or on the signed
 * packets inside the encryption, which are then encrypted to the server again without being
 * parsed ("inner": what anyone holding the server's public key can send). Then:
 *  - open() must resolve or throw a SpaError: anything else is a finding (`non-spa-error`);
 *  - if it resolves, the knock must be the seed's own (same signer, nonce and payload): else a
 *    finding (`accepted-other-knock`); and the pipeline, which granted the seed once already,
 *    must not grant it again (`second-grant`).
 * Prints executions per second, outcome codes and findings as JSON; exits 1 on any finding.
 *
 * Usage: npm run fuzz -- [--seconds 60] [--max-execs 10000000] [--seed N] [--kinds ecc,v6,rsa2048]
 *        [--inner-share 0.25] [--out DIR]   (findings are written there as JSON, one file each)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type Opened, type OpenOptions, open, seal } from '../protocol/envelope.js';
import { replayKey } from '../protocol/replay-key.js';
import { SpaError } from '../protocol/errors.js';
import { decryptToPackets } from '../test/helpers/craft.js';
import { freshPayload, type KeyKind, TEST_NOW, testKey } from '../test/helpers/keys.js';
import { applyOps, type Op, prng, randomOps } from '../test/security/mutate.js';
import { encryptRaw, granted, type Rig, recordFor, rig } from '../test/security/rig.js';

export interface FuzzOptions {
  readonly seconds: number;
  readonly maxExecs?: number;
  readonly seed?: number;
  readonly kinds?: readonly KeyKind[];
  /** Share of executions that mutate the inside of the encryption (they cost an encryption). */
  readonly innerShare?: number;
  readonly out?: string | null;
}

export interface Finding {
  readonly kind: 'non-spa-error' | 'accepted-other-knock' | 'second-grant';
  readonly keyKind: KeyKind;
  readonly mode: 'outer' | 'inner';
  readonly ops: readonly Op[];
  readonly hex: string;
  readonly detail: string;
}

export interface FuzzReport {
  readonly seed: number;
  readonly execs: number;
  readonly seconds: number;
  readonly execsPerSecond: number;
  readonly outcomes: Record<string, number>;
  readonly byMode: Record<string, number>;
  readonly findings: readonly Finding[];
}

interface Seed {
  readonly kind: KeyKind;
  readonly bytes: Uint8Array;
  readonly inner: Uint8Array;
  readonly original: Opened;
  readonly opts: OpenOptions;
  readonly rig: Rig;
}

function sameKnock(a: Opened, b: Opened): boolean {
  const norm = (o: Opened) => JSON.stringify({ ...o.payload, nonce: [...o.payload.nonce] });
  return (
    replayKey(a.signer.fingerprint, a.payload.nonce) === replayKey(b.signer.fingerprint, b.payload.nonce) &&
    norm(a) === norm(b)
  );
}

async function makeSeed(kind: KeyKind): Promise<Seed> {
  const [server, client] = await Promise.all([
    testKey(`fuzz-server-${kind}`, { kind }),
    testKey(`fuzz-client-${kind}`, { kind }),
  ]);
  const r = await rig({ server, records: [recordFor(client)] });
  const bytes = await seal(freshPayload({ server, now: TEST_NOW }), {
    signingKey: client.privateKey,
    serverKey: server.publicKey,
    now: TEST_NOW,
  });
  const opts: OpenOptions = {
    server: r.identity,
    lookupSigner: (f) => r.users().lookupSigner(f),
    now: TEST_NOW,
    maxSkewSeconds: 120,
  };
  const original = await open(bytes, opts);
  await granted(r, bytes);
  const inner = await decryptToPackets(bytes, server.privateKey, TEST_NOW);
  return { kind, bytes, inner, original, opts, rig: r };
}

/** Runs the fuzzer in this process; never throws for a finding (they are in the report). */
export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const seedValue = (o.seed ?? Date.now()) >>> 0;
  const next = prng(seedValue);
  const seeds = await Promise.all((o.kinds ?? ['ecc', 'v6']).map(makeSeed));
  const outcomes: Record<string, number> = {};
  const byMode: Record<string, number> = { outer: 0, inner: 0 };
  const findings: Finding[] = [];
  const innerShare = o.innerShare ?? 0.25;
  const maxExecs = o.maxExecs ?? Number.POSITIVE_INFINITY;
  const t0 = performance.now();
  const end = t0 + o.seconds * 1000;
  let execs = 0;
  while (execs < maxExecs && performance.now() < end) {
    const seed = seeds[execs % seeds.length] as Seed;
    const inner = (next() % 1000) / 1000 < innerShare;
    const mode = inner ? 'inner' : 'outer';
    const base = inner ? seed.inner : seed.bytes;
    const donor = (seeds[next() % seeds.length] as Seed)[inner ? 'inner' : 'bytes'];
    const ops = randomOps(next, base.length);
    const mutated = applyOps(base, ops, donor);
    let bytes: Uint8Array;
    if (inner) {
      // a mutation that leaves the inside unchanged is not a mutation
      if (Buffer.compare(Buffer.from(mutated), Buffer.from(base)) === 0) continue;
      bytes = await encryptRaw(mutated, seed.rig.server.publicKey);
    } else {
      if (Buffer.compare(Buffer.from(mutated), Buffer.from(base)) === 0) continue;
      bytes = mutated;
    }
    execs++;
    byMode[mode] = (byMode[mode] ?? 0) + 1;
    const finding = (kind: Finding['kind'], detail: string): void => {
      const f: Finding = {
        kind,
        keyKind: seed.kind,
        mode,
        ops,
        hex: Buffer.from(bytes).toString('hex'),
        detail,
      };
      findings.push(f);
      if (o.out) {
        mkdirSync(o.out, { recursive: true });
        writeFileSync(join(o.out, `finding-${findings.length}.json`), `${JSON.stringify(f, null, 2)}\n`);
      }
    };
    let code: string;
    try {
      const opened = await open(bytes, seed.opts);
      code = 'ok';
      if (!sameKnock(opened, seed.original))
        finding('accepted-other-knock', 'open() accepted a different knock');
      const out = await seed.rig.send(bytes);
      if (out.ok) finding('second-grant', 'the pipeline granted a mutant of a knock it had granted');
    } catch (e) {
      if (e instanceof SpaError) code = e.code;
      else {
        code = 'NON_SPA_ERROR';
        finding('non-spa-error', String((e as Error)?.stack ?? e));
      }
    }
    outcomes[code] = (outcomes[code] ?? 0) + 1;
    if (execs % 5000 === 0) for (const s of seeds) s.rig.audit.lines.length = 0;
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    seed: seedValue,
    execs,
    seconds: Number(seconds.toFixed(2)),
    execsPerSecond: Math.round(execs / seconds),
    outcomes,
    byMode,
    findings,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      'max-execs': { type: 'string', default: '10000000' },
      seed: { type: 'string' },
      kinds: { type: 'string', default: 'ecc,v6' },
      'inner-share': { type: 'string', default: '0.25' },
      out: { type: 'string' },
    },
  });
  const seconds = Math.min(3600, Math.max(1, Number(values.seconds)));
  const report = await runFuzz({
    seconds,
    maxExecs: Number(values['max-execs']),
    ...(values.seed ? { seed: Number(values.seed) } : {}),
    kinds: String(values.kinds).split(',') as KeyKind[],
    innerShare: Number(values['inner-share']),
    out: values.out ?? null,
  });
  console.log(JSON.stringify({ ...report, findings: report.findings.length }, null, 2));
  for (const f of report.findings.slice(0, 5)) console.error(`finding: ${JSON.stringify(f)}`);
  process.exitCode = report.findings.length > 0 ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
