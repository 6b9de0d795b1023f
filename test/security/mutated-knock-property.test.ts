/**
 * Property-based attacks on open() and the pipeline (fast-check): arbitrary bytes, and valid
 * knocks mutated on the wire or inside the encryption (re-encrypted to the server, which anyone
 * with its public key can do). open() may only refuse with a SpaError or return the very knock
 * that was mutated; the pipeline, having granted that knock once, never grants a mutant.
 * The longer run of the same checks is `npm run fuzz` (scripts/fuzz-open.ts); a short run of it
 * is at the end of this file.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import fc from 'fast-check';
import { type Opened, type OpenOptions, open } from '../../protocol/envelope.js';
import { replayKey } from '../../protocol/replay-key.js';
import { SpaError } from '../../protocol/errors.js';
import { runFuzz } from '../../scripts/fuzz-open.js';
import { decryptToPackets } from '../helpers/craft.js';
import { TEST_NOW, type TestKey, testKey } from '../helpers/keys.js';
import { applyOps, INTERESTING, type Op } from './mutate.js';
import { encryptRaw, granted, type Rig, recordFor, rig } from './rig.js';
import { slow } from '../helpers/slow.js';

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('xor' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({
    kind: fc.constant('set' as const),
    at: fc.nat(),
    value: fc.oneof(fc.constantFrom(...INTERESTING), fc.nat(255)),
  }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.array(fc.nat(255), { minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }),
  fc.record({
    kind: fc.constant('duplicate' as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 16 }),
  }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), other: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('splice' as const),
    at: fc.nat(),
    from: fc.nat(),
    length: fc.integer({ min: 1, max: 32 }),
  }),
);
const opsArb = fc.array(opArb, { minLength: 1, maxLength: 4 });

function sameKnock(a: Opened, b: Opened): boolean {
  const norm = (o: Opened) => JSON.stringify({ ...o.payload, nonce: [...o.payload.nonce] });
  return (
    replayKey(a.signer.fingerprint, a.payload.nonce) === replayKey(b.signer.fingerprint, b.payload.nonce) &&
    norm(a) === norm(b)
  );
}

describe('mutated knocks (property-based)', slow, () => {
  let r: Rig;
  let alice: TestKey;
  let knock: Uint8Array;
  let other: Uint8Array;
  let inner: Uint8Array;
  let original: Opened;
  let opts: OpenOptions;

  /** open() outcome: the code of a SpaError, or the opened knock; anything else fails the property. */
  async function openOutcome(bytes: Uint8Array): Promise<string | Opened> {
    try {
      return await open(bytes, opts);
    } catch (e) {
      if (e instanceof SpaError) return e.code;
      throw new assert.AssertionError({ message: `open() threw a non-SpaError: ${String(e)}` });
    }
  }

  before(async () => {
    alice = await testKey('sec-alice');
    r = await rig({ server: await testKey('sec-server'), records: [recordFor(alice)] });
    opts = {
      server: r.identity,
      lookupSigner: (f) => r.users().lookupSigner(f),
      now: TEST_NOW,
      maxSkewSeconds: 120,
    };
    knock = await r.knock(alice);
    other = await r.knock(alice);
    original = await open(knock, opts);
    await granted(r, knock);
    inner = await decryptToPackets(knock, r.server.privateKey, TEST_NOW);
  });

  test('open() on arbitrary bytes up to 1500 long only ever refuses, with a SpaError', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 1500 }), async (bytes) => {
        assert.equal(typeof (await openOutcome(bytes)), 'string');
      }),
      { numRuns: 300 },
    );
  });

  test('open() on our session key packet followed by arbitrary encrypted data only ever refuses, with a SpaError', async () => {
    const pkeskEnd = 2 + (knock[1] ?? 0);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 600 }), async (body) => {
        const seipd = Uint8Array.from([
          0xd2,
          ...(body.length < 192
            ? [body.length]
            : [((body.length - 192) >> 8) + 192, (body.length - 192) & 0xff]),
          ...body,
        ]);
        const outcome = await openOutcome(Uint8Array.from([...knock.subarray(0, pkeskEnd), ...seipd]));
        assert.equal(typeof outcome, 'string');
      }),
      { numRuns: 150 },
    );
  });

  test('a valid knock mutated on the wire is refused, or opens to the very same knock; the pipeline never grants it twice', async () => {
    await fc.assert(
      fc.asyncProperty(opsArb, async (ops) => {
        const bytes = applyOps(knock, ops, other);
        fc.pre(Buffer.compare(Buffer.from(bytes), Buffer.from(knock)) !== 0);
        const outcome = await openOutcome(bytes);
        if (typeof outcome !== 'string') assert.ok(sameKnock(outcome, original), 'opened to another knock');
        const out = await r.send(bytes);
        assert.equal(out.ok, false, 'a mutant was granted');
      }),
      { numRuns: 400 },
    );
  });

  test('the signed packets of a knock mutated inside the encryption and re-encrypted are refused, or the same knock', async () => {
    await fc.assert(
      fc.asyncProperty(opsArb, async (ops) => {
        const mutated = applyOps(inner, ops);
        fc.pre(Buffer.compare(Buffer.from(mutated), Buffer.from(inner)) !== 0);
        const bytes = await encryptRaw(mutated, r.server.publicKey);
        const outcome = await openOutcome(bytes);
        if (typeof outcome !== 'string') assert.ok(sameKnock(outcome, original), 'opened to another knock');
        const out = await r.send(bytes);
        assert.equal(out.ok, false, 'a mutant was granted');
      }),
      { numRuns: 150 },
    );
  });

  test('a short mutation run of scripts/fuzz-open.ts (3 s) finds nothing', async () => {
    const report = await runFuzz({ seconds: 3, seed: 1 });
    console.log(
      `fuzz-short: ${report.execs} executions, ${report.execsPerSecond}/s, outcomes ${JSON.stringify(report.outcomes)}`,
    );
    assert.ok(report.execs > 0);
    assert.deepEqual(report.findings, []);
  });
});
