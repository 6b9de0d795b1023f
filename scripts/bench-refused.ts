/**
 * What a refused datagram costs (docs/benchmarks.md "Targets": no refused datagram may cost more than about twice
 * a valid knock's CPU, bombs included). Pure and in process: each kind of datagram is built once,
 * then run through protocol `open()` (which starts with the framing pre-check) `--runs` times;
 * each run's CPU time (process.cpuUsage: user + system, all threads, so zlib's thread pool counts)
 * is taken on its own. Prints, per kind, the code it was refused with, median, p90 and worst CPU
 * µs per datagram, and the median's ratio to the median of a valid knock to the same server key.
 *
 * Kinds: random bytes; our key id + garbage (X25519 done, then the unwrap fails); a knock whose
 * ciphertext was tampered with; unsigned; four session key packets; ZLIB and ZIP bombs (1 MiB of
 * zeros in about 1 kB); a ZLIB stream of the most blocks that fit; BZip2 (two bombs, and a genuine knock);
 * forty levels of nested ZLIB; a message encrypted inside the message; a signature from an
 * unenrolled key with 300 unhashed subpackets; a stranger's signature relabelled as the enrolled
 * key (verification runs and fails); an RSA-4096 enrolled key's fingerprint on a garbage 4096-bit
 * signature; SEIPDv2 (AEAD) to a v6 key: valid, tampered, and with the largest chunk size octet.
 *
 * Usage: node dist/scripts/bench-refused.js [--runs 200]
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { deflateRawSync, deflateSync } from 'node:zlib';
import * as openpgp from 'openpgp';
import { type OpenOptions, open, seal, serverIdentity } from '../protocol/envelope.js';
import { isSpaError } from '../protocol/errors.js';
import { parseFraming } from '../protocol/framing.js';
import { encodePayload } from '../protocol/payload.js';
import {
  concat,
  craftKnock,
  encryptPackets,
  forgedIssuerPackets,
  signedPackets,
  splitPackets,
} from '../test/helpers/craft.js';
import {
  freshPayload,
  fromPrivateKey,
  KEY_DATE,
  signerMap,
  TEST_NOW,
  testKey,
} from '../test/helpers/keys.js';
import { encryptRaw } from '../test/security/rig.js';
import { keyIdGarbageKeep, pct } from './bench-lib.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '200' } } });
const RUNS = Math.max(10, Math.min(5000, Number(values.runs)));

function packet(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  if (n < 192) return concat(Uint8Array.of(0xc0 | tag, n), body);
  if (n < 8384) return concat(Uint8Array.of(0xc0 | tag, ((n - 192) >> 8) + 192, (n - 192) & 0xff), body);
  return concat(Uint8Array.of(0xc0 | tag, 0xff, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff), body);
}
const compressed = (algorithm: number, body: Uint8Array): Uint8Array =>
  packet(8, concat(Uint8Array.of(algorithm), body));

function bzip2(data: Uint8Array): Uint8Array | null {
  const r = spawnSync('bzip2', ['-c', '-9'], { input: data, maxBuffer: 1 << 20 });
  return r.status === 0 ? new Uint8Array(r.stdout) : null;
}

/**
 * A ZLIB stream of as many fixed-Huffman blocks as fit in `bytes` bytes, each holding one
 * literal: the most block headers (and the least output) per input byte an inflater can be fed.
 */
function manyBlocksZlib(bytes: number, tail: Uint8Array): Uint8Array {
  // a final stored block carries `tail`; before it, 10-bit fixed blocks: BFINAL=0, BTYPE=01,
  // literal 0 (8 bits 00110000), end-of-block (7 bits 0000000)
  const bits: number[] = [];
  const blocks = Math.floor(((bytes - tail.length - 12) * 8) / 18);
  for (let i = 0; i < blocks; i++) {
    bits.push(0, 1, 0); // BFINAL 0, BTYPE 01 (LSB first)
    for (const b of [0, 0, 1, 1, 0, 0, 0, 0]) bits.push(b); // literal 0x00, code 00110000
    for (let j = 0; j < 7; j++) bits.push(0); // end of block
  }
  bits.push(1, 0, 0); // BFINAL 1, stored
  while (bits.length % 8) bits.push(0);
  const out: number[] = [0x78, 0x01];
  for (let i = 0; i < bits.length; i += 8) {
    let v = 0;
    for (let j = 0; j < 8; j++) v |= (bits[i + j] ?? 0) << j;
    out.push(v);
  }
  const n = tail.length;
  out.push(n & 0xff, n >> 8, ~n & 0xff, (~n >> 8) & 0xff, ...tail);
  // the Adler-32 is of the whole output (the zeros and the tail); a wrong one only adds a refusal
  let a = 1;
  let b = 0;
  const whole = concat(new Uint8Array(blocks), tail);
  for (const x of whole) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  out.push((b >> 8) & 0xff, b & 0xff, (a >> 8) & 0xff, a & 0xff);
  return Uint8Array.from(out);
}

interface Kind {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly opts: OpenOptions;
  /** The valid knock to the same server key that the ratio is taken against. */
  readonly versus: string;
}

const VALID = 'valid knock (Ed25519 → Curve25519)';
const VALID_V2 = 'valid knock, SEIPDv2 (AEAD)';

async function main(): Promise<void> {
  const [server, alice, mallory, rsaUser] = await Promise.all([
    testKey('bench-refused-server'),
    testKey('bench-refused-alice'),
    testKey('bench-refused-mallory'),
    testKey('bench-refused-rsa', { kind: 'rsa4096' }),
  ]);
  const identity = await serverIdentity(server.privateKey);
  const now = TEST_NOW;
  const opts: OpenOptions = {
    server: identity,
    lookupSigner: signerMap([alice, rsaUser]),
    now,
    maxSkewSeconds: 120,
  };
  const payload = () => encodePayload(freshPayload({ server, now }));
  const signed = () => signedPackets(payload(), [alice.privateKey], { now });
  const valid = await seal(freshPayload({ server, now }), {
    signingKey: alice.privateKey,
    serverKey: server.publicKey,
    now,
  });
  const kinds: Kind[] = [];
  const add = (name: string, bytes: Uint8Array, o: OpenOptions = opts, versus = VALID): void => {
    if (bytes.length > 1400) throw new Error(`${name}: ${bytes.length} bytes, more than a datagram`);
    kinds.push({ name, bytes, opts: o, versus });
  };

  add(VALID, valid);
  add('random bytes', new Uint8Array(randomBytes(valid.length)));
  {
    const g = new Uint8Array(randomBytes(valid.length));
    for (const [from, to] of keyIdGarbageKeep(valid)) g.set(valid.subarray(from, to), from);
    add('our key id + garbage', g);
  }
  {
    const t = Uint8Array.from(valid);
    t[t.length - 30] = (t[t.length - 30] ?? 0) ^ 1;
    add('tampered ciphertext', t);
  }
  add('unsigned', await craftKnock(payload(), { signers: [], to: server.publicKey, now }));
  add(
    'four session key packets',
    await encryptPackets(
      await signed(),
      [mallory.publicKey, rsaUser.publicKey, alice.publicKey, server.publicKey],
      {
        now,
      },
    ),
  );
  const zeros = new Uint8Array(900_000);
  zeros.set(await signed());
  add(
    'zlib bomb (900 kB of zeros)',
    await encryptRaw(compressed(2, deflateSync(zeros, { level: 9 })), server.publicKey),
  );
  add(
    'zip bomb (900 kB of zeros)',
    await encryptRaw(compressed(1, deflateRawSync(zeros, { level: 9 })), server.publicKey),
  );
  add(
    'zlib, ~600 tiny blocks',
    await encryptRaw(compressed(2, manyBlocksZlib(1250, await signed())), server.publicKey),
  );
  const bomb4 = new Uint8Array(4 << 20);
  bomb4.set(await signed());
  const bzBomb = bzip2(bomb4);
  // "abab...": nothing for bzip2's run-length stage to shrink, so its first block is 900 kB
  // that the decoder must un-sort (inverse BWT) before it writes the first byte
  const ab = new Uint8Array(4 << 20).map((_, i) => 0x61 + (i & 1));
  ab.set(await signed());
  const bzBlock = bzip2(ab);
  const bzPlain = bzip2(await signed());
  if (bzBomb && bzBlock && bzPlain) {
    add('bzip2 bomb (4 MiB of zeros)', await encryptRaw(compressed(3, bzBomb), server.publicKey));
    add('bzip2 bomb (4 MiB of "ab")', await encryptRaw(compressed(3, bzBlock), server.publicKey));
    add('bzip2, a genuine knock', await encryptRaw(compressed(3, bzPlain), server.publicKey));
  } else {
    console.log('bench-refused: bzip2 is not installed, the bzip2 kinds are left out');
  }
  {
    let inner = await signed();
    for (let i = 0; i < 40; i++) inner = compressed(2, deflateSync(inner));
    add('nested zlib, 40 levels', await encryptRaw(inner, server.publicKey));
  }
  add('a knock encrypted inside the knock', await encryptPackets(valid, server.publicKey, { now }));
  {
    // mallory's valid signature with 300 one-octet unhashed subpackets (notation-free, type 100)
    const [ops, lit, sig] = splitPackets(await signedPackets(payload(), [mallory.privateKey], { now })).map(
      (p) => p.bytes,
    ) as [Uint8Array, Uint8Array, Uint8Array];
    const body = sig.subarray((sig[1] ?? 0) < 192 ? 2 : 3);
    const at = 6 + (((body[4] ?? 0) << 8) | (body[5] ?? 0));
    const old = ((body[at] ?? 0) << 8) | (body[at + 1] ?? 0);
    const subs = new Uint8Array(600);
    for (let i = 0; i < 300; i++) subs.set([1, 100], 2 * i);
    const big = packet(
      2,
      concat(
        body.subarray(0, at),
        Uint8Array.of(subs.length >> 8, subs.length & 0xff),
        subs,
        body.subarray(at + 2 + old),
      ),
    );
    add(
      'unenrolled signer, 300 unhashed subpackets',
      await encryptPackets(concat(ops, lit, big), server.publicKey, { now }),
    );
  }
  add(
    'stranger relabelled as the enrolled key',
    await encryptPackets(
      await forgedIssuerPackets(payload(), mallory.privateKey, alice.publicKey, now),
      server.publicKey,
      {
        now,
      },
    ),
  );
  {
    // an RSA-4096 signer's fingerprint over a garbage 4096-bit signature: one RSA public-key op
    const realRsa = await signedPackets(payload(), [rsaUser.privateKey], { now });
    const parts = splitPackets(realRsa).map((p) => p.bytes) as [Uint8Array, Uint8Array, Uint8Array];
    const sig = Uint8Array.from(parts[2]);
    sig.set(randomBytes(400), sig.length - 400);
    sig[sig.length - 512] = 0x80 | (sig[sig.length - 512] ?? 0);
    add(
      'RSA-4096 signer, garbage signature',
      await encryptPackets(concat(parts[0], parts[1], sig), server.publicKey, { now }),
    );
  }

  {
    // SEIPDv2 (AEAD) to a v6 server announcing it: valid, and with the chunk size octet at 255
    // (the chunk size is authenticated, so this fails the AEAD check)
    const { privateKey } = await openpgp.generateKey({
      type: 'curve25519',
      userIDs: [{ name: 'bench-aead', email: 'bench-aead@example.test' }],
      date: KEY_DATE,
      config: { v6Keys: true, aeadProtect: true },
      format: 'object',
    });
    const aead = fromPrivateKey('bench-aead', privateKey);
    const o: OpenOptions = { ...opts, server: await serverIdentity(aead.privateKey) };
    const v2 = await seal(freshPayload({ server: aead, now }), {
      signingKey: alice.privateKey,
      serverKey: aead.publicKey,
      now,
    });
    const f = parseFraming(v2);
    if (f.seipdVersion !== 2) throw new Error('bench-refused: expected a SEIPDv2 knock');
    add(VALID_V2, v2, o, VALID_V2);
    const tampered = Uint8Array.from(v2);
    tampered[tampered.length - 30] = (tampered[tampered.length - 30] ?? 0) ^ 1;
    add('SEIPDv2, tampered ciphertext', tampered, o, VALID_V2);
    const big = Uint8Array.from(v2);
    const at = big.length - f.encryptedBody.length + 3; // version, cipher, AEAD, chunk size
    big[at] = 255;
    add('SEIPDv2, chunk size octet 255', big, o, VALID_V2);
  }

  // warm up every path (lazy imports, key validity caches), then measure, interleaved
  const codes = new Map<string, string>();
  for (const k of kinds) {
    for (let i = 0; i < 5; i++) codes.set(k.name, await outcome(k));
  }
  const cpu = new Map<string, number[]>(kinds.map((k) => [k.name, []]));
  for (let run = 0; run < RUNS; run++) {
    for (const k of kinds) {
      const before = process.cpuUsage();
      await outcome(k);
      const d = process.cpuUsage(before);
      cpu.get(k.name)?.push(d.user + d.system);
    }
  }
  const rows = kinds.map((k) => {
    const xs = cpu.get(k.name) ?? [];
    return [
      k.name,
      codes.get(k.name) ?? '?',
      String(k.bytes.length),
      pct(xs, 50).toFixed(0),
      pct(xs, 90).toFixed(0),
      Math.max(...xs).toFixed(0),
      (pct(xs, 50) / pct(cpu.get(k.versus) ?? [], 50)).toFixed(2),
    ];
  });
  const head = ['kind', 'outcome', 'bytes', 'median µs', 'p90 µs', 'worst µs', 'median / valid*'];
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r.map((c, i) => (i === 0 || i === 1 ? c.padEnd(width[i] ?? 0) : c.padStart(width[i] ?? 0))).join('  ');
  console.log(`bench-refused: CPU per datagram through open(), ${RUNS} runs each, node ${process.version}`);
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log('* valid: the valid knock to the same server key (the SEIPDv2 rows: the v6 one)');
}

async function outcome(k: Kind): Promise<string> {
  try {
    await open(k.bytes, k.opts);
    return 'ok';
  } catch (e) {
    return isSpaError(e) ? e.code : `error: ${(e as Error).message}`;
  }
}

await main();
