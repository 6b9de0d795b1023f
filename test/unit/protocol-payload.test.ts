import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { PortSpec } from '../../protocol/access.js';
import { parseAddress } from '../../protocol/address.js';
import { freshPayload } from '../helpers/keys.js';
import { ParseError, SpaError } from '../../protocol/errors.js';
import {
  ACCESS_MAX_ENTRIES,
  COMMAND_MAX_BYTES,
  PAYLOAD_MAX_BYTES,
  PAYLOAD_VERSION,
  TIMEOUT_MAX_SECONDS,
} from '../../protocol/limits.js';
import {
  bytesToHex,
  decodePayload,
  describePayload,
  encodePayload,
  hexToBytes,
  makePayload,
  type Payload,
} from '../../protocol/payload.js';

/**
 * An encoder written from the spec's field list, independent of encodePayload, that can also
 * write what encodePayload refuses to: each field overridable, lengths forgeable.
 */
interface Raw {
  version?: number;
  type?: number;
  ts?: bigint;
  nonce?: Uint8Array;
  fpr?: Uint8Array;
  fprLen?: number;
  user?: Uint8Array;
  userLen?: number;
  fam?: number;
  addr?: Uint8Array;
  access?: Array<[number, number]>;
  count?: number;
  timeout?: number;
  cmd?: Uint8Array;
  cmdLen?: number;
  trailing?: Uint8Array;
}

const enc = new TextEncoder();
const FPR20 = new Uint8Array(20).fill(0xab);
const FPR32 = new Uint8Array(32).fill(0xcd);
const NONCE = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

function raw(o: Raw = {}): Uint8Array {
  const out: number[] = [];
  const u16 = (n: number) => out.push((n >> 8) & 0xff, n & 0xff);
  const u32 = (n: number) => out.push((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  out.push(o.version ?? 1, o.type ?? 1);
  const ts = o.ts ?? 1_750_000_000n;
  for (let i = 7; i >= 0; i--) out.push(Number((ts >> BigInt(8 * i)) & 0xffn));
  out.push(...(o.nonce ?? NONCE));
  const fpr = o.fpr ?? FPR20;
  out.push(o.fprLen ?? fpr.length, ...fpr);
  const user = o.user ?? enc.encode('alice');
  out.push(o.userLen ?? user.length, ...user);
  const fam = o.fam ?? 4;
  out.push(fam, ...(o.addr ?? (fam === 4 ? [198, 51, 100, 2] : fam === 6 ? new Uint8Array(16).fill(1) : [])));
  const access = o.access ?? [[6, 22]];
  out.push(o.count ?? access.length);
  for (const [proto, port] of access) {
    out.push(proto);
    u16(port);
  }
  u32(o.timeout ?? 0);
  const cmd = o.cmd ?? new Uint8Array(0);
  u16(o.cmdLen ?? cmd.length);
  out.push(...cmd);
  out.push(...(o.trailing ?? []));
  return Uint8Array.from(out);
}

/** A valid command message in raw form. */
function rawCommand(o: Raw = {}): Uint8Array {
  return raw({ type: 2, access: [], cmd: enc.encode('/usr/local/bin/deploy --now'), ...o });
}

function refuses(bytes: Uint8Array, code: string, field?: string): void {
  assert.throws(
    () => decodePayload(bytes),
    (e: unknown) => {
      assert.ok(e instanceof ParseError, `expected a ParseError, got ${String(e)}`);
      assert.equal(e.code, code);
      if (field !== undefined) assert.equal(e.field, field);
      return true;
    },
  );
}

function base(o: Partial<Payload> = {}): Payload {
  return makePayload({
    type: 'access',
    timestamp: 1_750_000_000,
    nonce: NONCE,
    serverFingerprint: bytesToHex(FPR20),
    username: 'alice',
    source: parseAddress('198.51.100.2'),
    access: [{ proto: 'tcp', port: 22 }],
    timeoutSeconds: 0,
    command: null,
    ...o,
  });
}

function makeRefuses(o: Partial<Payload>, field: string): void {
  assert.throws(
    () => base(o),
    (e: unknown) => e instanceof ParseError && e.code === 'PAYLOAD_MALFORMED' && e.field === field,
  );
}

describe('payload encoding', () => {
  test('encodePayload writes the fields in spec order, byte for byte', () => {
    assert.deepEqual(encodePayload(base()), raw());
    const v6cmd = base({
      type: 'command',
      access: [],
      command: 'run',
      source: parseAddress('2001:db8::1'),
      serverFingerprint: bytesToHex(FPR32),
    });
    const addr = parseAddress('2001:db8::1').bytes;
    assert.deepEqual(
      encodePayload(v6cmd),
      raw({ type: 2, access: [], fam: 6, addr, fpr: FPR32, cmd: enc.encode('run') }),
    );
    assert.deepEqual(encodePayload(base({ source: 'any' })), raw({ fam: 0 }));
  });

  test('an access payload survives encode then decode unchanged', () => {
    const p = base({
      access: [
        { proto: 'tcp', port: 22 },
        { proto: 'tcp', port: 443 },
        { proto: 'udp', port: 53 },
      ],
      timeoutSeconds: 300,
      source: parseAddress('2001:db8::7'),
      serverFingerprint: bytesToHex(FPR32),
    });
    assert.deepEqual(decodePayload(encodePayload(p)), p);
  });

  test('a command payload survives encode then decode unchanged, including non-ASCII text', () => {
    const p = base({ type: 'command', access: [], command: 'echo héllo wörld ✓' });
    assert.deepEqual(decodePayload(encodePayload(p)), p);
  });

  test('makePayload puts access entries in canonical order (tcp before udp, then by port)', () => {
    const p = base({
      access: [
        { proto: 'udp', port: 53 },
        { proto: 'tcp', port: 443 },
        { proto: 'tcp', port: 22 },
      ],
    });
    assert.deepEqual(p.access, [
      { proto: 'tcp', port: 22 },
      { proto: 'tcp', port: 443 },
      { proto: 'udp', port: 53 },
    ]);
  });

  test('makePayload refuses duplicate access entries rather than merging them silently', () => {
    makeRefuses(
      {
        access: [
          { proto: 'tcp', port: 22 },
          { proto: 'tcp', port: 22 },
        ],
      },
      'access',
    );
  });

  test('a decoded nonce is a copy, not a view into the packet buffer', () => {
    const bytes = raw();
    const p = decodePayload(bytes);
    bytes.fill(0);
    assert.deepEqual(p.nonce, NONCE);
  });

  test('a payload inside a larger buffer (non-zero byteOffset) decodes', () => {
    const inner = raw({ timeout: 600 });
    const big = new Uint8Array(inner.length + 10);
    big.set(inner, 7);
    const p = decodePayload(big.subarray(7, 7 + inner.length));
    assert.equal(p.timeoutSeconds, 600);
  });

  test('describePayload shows every field readably', () => {
    const p = base({ access: [{ proto: 'udp', port: 53 }], timeoutSeconds: 60 });
    assert.deepEqual(describePayload(p), {
      type: 'access',
      timestamp: 1_750_000_000,
      nonce: '0102030405060708090a0b0c0d0e0f10',
      server: 'AB'.repeat(20),
      username: 'alice',
      source: '198.51.100.2',
      access: 'udp/53',
      timeout: 60,
      command: null,
    });
    assert.equal(describePayload(base({ source: 'any' })).source, 'any');
  });

  test('bytesToHex writes uppercase and hexToBytes reads it back', () => {
    const b = Uint8Array.from([0, 1, 0x7f, 0x80, 0xfe, 0xff]);
    assert.equal(bytesToHex(b), '00017F80FEFF');
    assert.deepEqual(hexToBytes('00017F80FEFF'), b);
    assert.deepEqual(hexToBytes('00017f80feff'), b);
  });
});

describe('payload decoding refuses', () => {
  test('version 0 and version 2 with PAYLOAD_VERSION', () => {
    refuses(raw({ version: 0 }), 'PAYLOAD_VERSION', 'version');
    refuses(raw({ version: 2 }), 'PAYLOAD_VERSION', 'version');
    refuses(raw({ version: 255 }), 'PAYLOAD_VERSION', 'version');
  });

  test('message types other than 1 (access) and 2 (command)', () => {
    for (const type of [0, 3, 255]) refuses(raw({ type }), 'PAYLOAD_MALFORMED', 'type');
  });

  test('a timestamp of 2^53 or more, which a JavaScript number cannot hold exactly', () => {
    assert.equal(decodePayload(raw({ ts: 2n ** 53n - 1n })).timestamp, Number.MAX_SAFE_INTEGER);
    refuses(raw({ ts: 2n ** 53n }), 'PAYLOAD_MALFORMED', 'timestamp');
    refuses(raw({ ts: 2n ** 64n - 1n }), 'PAYLOAD_MALFORMED', 'timestamp');
  });

  test('a nonce that is not 16 bytes (when building a payload)', () => {
    makeRefuses({ nonce: new Uint8Array(15) }, 'nonce');
    makeRefuses({ nonce: new Uint8Array(17) }, 'nonce');
    makeRefuses({ nonce: new Uint8Array(0) }, 'nonce');
  });

  test('server fingerprints of 0, 19, 21 and 33 bytes (only 20 and 32 exist)', () => {
    for (const n of [0, 19, 21, 31, 33]) {
      refuses(raw({ fpr: new Uint8Array(n).fill(1) }), 'PAYLOAD_MALFORMED', 'server_fpr');
    }
    assert.equal(decodePayload(raw({ fpr: FPR32 })).serverFingerprint, 'CD'.repeat(32));
  });

  test('server fingerprints that are not 40 or 64 uppercase hex digits (when building)', () => {
    makeRefuses({ serverFingerprint: 'ab'.repeat(20) }, 'server_fpr');
    makeRefuses({ serverFingerprint: 'A'.repeat(39) }, 'server_fpr');
    makeRefuses({ serverFingerprint: 'A'.repeat(41) }, 'server_fpr');
    makeRefuses({ serverFingerprint: `${'A'.repeat(38)}G0` }, 'server_fpr');
    makeRefuses({ serverFingerprint: '' }, 'server_fpr');
  });

  test('an empty username', () => {
    refuses(raw({ user: new Uint8Array(0) }), 'PAYLOAD_MALFORMED', 'username');
  });

  test('a 33-character username (32 is the limit)', () => {
    assert.equal(decodePayload(raw({ user: enc.encode('a'.repeat(32)) })).username, 'a'.repeat(32));
    refuses(raw({ user: enc.encode('a'.repeat(33)) }), 'PAYLOAD_MALFORMED', 'username');
  });

  test('usernames with uppercase, a leading digit, spaces or non-ASCII letters', () => {
    for (const u of ['Alice', '1alice', 'al ice', 'alicé', '-alice', 'al/ice']) {
      refuses(raw({ user: enc.encode(u) }), 'PAYLOAD_MALFORMED', 'username');
    }
  });

  test('a username that is not valid UTF-8', () => {
    refuses(raw({ user: Uint8Array.from([0x61, 0xff, 0x62]) }), 'PAYLOAD_MALFORMED', 'username');
    refuses(raw({ user: Uint8Array.from([0x61, 0xc3]) }), 'PAYLOAD_MALFORMED', 'username');
  });

  test('a username led by a UTF-8 byte order mark, which must not be stripped into "alice"', () => {
    refuses(raw({ user: Uint8Array.from([0xef, 0xbb, 0xbf, ...enc.encode('alice')]) }), 'PAYLOAD_MALFORMED');
  });

  test('address family 5 (and any family other than 0, 4, 6)', () => {
    for (const fam of [1, 5, 41, 255])
      refuses(raw({ fam, addr: new Uint8Array(4) }), 'PAYLOAD_MALFORMED', 'address');
  });

  test('an access message with no access entries', () => {
    refuses(raw({ access: [] }), 'PAYLOAD_MALFORMED', 'access');
  });

  test('17 access entries (16 is the limit)', () => {
    const many = (n: number): Array<[number, number]> => Array.from({ length: n }, (_, i) => [6, 1000 + i]);
    assert.equal(decodePayload(raw({ access: many(ACCESS_MAX_ENTRIES) })).access.length, ACCESS_MAX_ENTRIES);
    refuses(raw({ access: many(ACCESS_MAX_ENTRIES + 1) }), 'PAYLOAD_MALFORMED', 'access');
  });

  test('protocol numbers other than 6 (tcp) and 17 (udp), such as 1 (icmp)', () => {
    for (const proto of [0, 1, 58, 132])
      refuses(raw({ access: [[proto, 22]] }), 'PAYLOAD_MALFORMED', 'access');
  });

  test('port 0', () => {
    refuses(raw({ access: [[6, 0]] }), 'PAYLOAD_MALFORMED', 'access');
    assert.equal(decodePayload(raw({ access: [[17, 65535]] })).access[0]?.port, 65535);
  });

  test('unsorted access entries (by port, and udp before tcp)', () => {
    refuses(
      raw({
        access: [
          [6, 443],
          [6, 22],
        ],
      }),
      'PAYLOAD_MALFORMED',
      'access',
    );
    refuses(
      raw({
        access: [
          [17, 53],
          [6, 22],
        ],
      }),
      'PAYLOAD_MALFORMED',
      'access',
    );
  });

  test('duplicate access entries', () => {
    refuses(
      raw({
        access: [
          [6, 22],
          [6, 22],
        ],
      }),
      'PAYLOAD_MALFORMED',
      'access',
    );
  });

  test('a timeout above 86400 seconds', () => {
    assert.equal(decodePayload(raw({ timeout: TIMEOUT_MAX_SECONDS })).timeoutSeconds, TIMEOUT_MAX_SECONDS);
    refuses(raw({ timeout: TIMEOUT_MAX_SECONDS + 1 }), 'PAYLOAD_MALFORMED', 'timeout');
    refuses(raw({ timeout: 0xffffffff }), 'PAYLOAD_MALFORMED', 'timeout');
  });

  test('a command in an access message', () => {
    refuses(raw({ cmd: enc.encode('id') }), 'PAYLOAD_MALFORMED', 'command');
  });

  test('access entries in a command message', () => {
    assert.equal(decodePayload(rawCommand()).command, '/usr/local/bin/deploy --now');
    refuses(rawCommand({ access: [[6, 22]] }), 'PAYLOAD_MALFORMED', 'access');
  });

  test('a timeout in a command message', () => {
    refuses(rawCommand({ timeout: 30 }), 'PAYLOAD_MALFORMED', 'timeout');
  });

  test('a command message with an empty command', () => {
    refuses(rawCommand({ cmd: new Uint8Array(0) }), 'PAYLOAD_MALFORMED', 'command');
  });

  test('commands with a newline, a carriage return, NUL, another control character or DEL', () => {
    for (const c of ['ls\nrm -rf /', 'ls\r', 'ls\0', 'ls\x1b[2J', 'ls\t-l', 'ls\x7f']) {
      refuses(rawCommand({ cmd: enc.encode(c) }), 'PAYLOAD_MALFORMED', 'command');
    }
  });

  test('a command of 513 bytes (512 is the limit), counted in UTF-8 bytes not characters', () => {
    const ok = 'x'.repeat(COMMAND_MAX_BYTES);
    assert.equal(decodePayload(rawCommand({ cmd: enc.encode(ok) })).command, ok);
    refuses(
      rawCommand({ cmd: enc.encode('x'.repeat(COMMAND_MAX_BYTES + 1)) }),
      'PAYLOAD_MALFORMED',
      'command',
    );
    // 257 two-byte characters: 257 characters but 514 bytes
    refuses(rawCommand({ cmd: enc.encode('é'.repeat(257)) }), 'PAYLOAD_MALFORMED', 'command');
    makeRefuses({ type: 'command', access: [], command: 'é'.repeat(257) }, 'command');
  });

  test('a command that is not valid UTF-8', () => {
    refuses(
      rawCommand({ cmd: Uint8Array.from([0x6c, 0x73, 0x20, 0xc0, 0xaf]) }),
      'PAYLOAD_MALFORMED',
      'command',
    );
  });

  test('a command led by a byte order mark is kept as sent, not decoded to the shorter command', () => {
    const cmd = Uint8Array.from([0xef, 0xbb, 0xbf, ...enc.encode('deploy')]);
    const bytes = rawCommand({ cmd });
    const p = decodePayload(bytes);
    assert.equal(p.command, '\u{feff}deploy', 'the mark was stripped');
    assert.deepEqual(encodePayload(p), bytes, 'the decoded command must re-encode to the bytes sent');
  });

  test('one byte after command that is no valid extension block (SPEC.md §4.6)', () => {
    refuses(raw({ trailing: Uint8Array.of(0) }), 'PAYLOAD_MALFORMED', 'ext_flags');
    refuses(rawCommand({ trailing: Uint8Array.of(0x41) }), 'PAYLOAD_MALFORMED', 'ext_flags');
  });

  test('one trailing byte after a complete extension block', () => {
    refuses(raw({ trailing: Uint8Array.of(0x01, 0) }), 'PAYLOAD_MALFORMED', 'trailing');
  });

  test('a declared command length longer than the bytes present', () => {
    refuses(rawCommand({ cmdLen: 40 }), 'PAYLOAD_MALFORMED', 'command');
  });

  test('input longer than the payload maximum before reading any field', () => {
    refuses(new Uint8Array(PAYLOAD_MAX_BYTES + 1), 'PAYLOAD_MALFORMED', 'length');
  });

  test('every truncation of a valid access payload and of a valid command payload', () => {
    for (const full of [
      raw({
        access: [
          [6, 22],
          [17, 53],
        ],
        fam: 6,
      }),
      rawCommand(),
    ]) {
      decodePayload(full);
      for (let n = 0; n < full.length; n++) refuses(full.subarray(0, n), 'PAYLOAD_MALFORMED');
    }
  });

  test('payload objects that break the rules, when encoding', () => {
    const p = base();
    const bad: Array<[Partial<Payload>, string]> = [
      [{ timestamp: -1 }, 'timestamp'],
      [{ timestamp: 1.5 }, 'timestamp'],
      [{ timestamp: 2 ** 53 }, 'timestamp'],
      [{ type: 'knock' as Payload['type'] }, 'type'],
      [{ access: [{ proto: 'tcp', port: 70000 }] }, 'access'],
      [{ access: [{ proto: 'tcp', port: 2.5 }] }, 'access'],
      [{ timeoutSeconds: -1 }, 'timeout'],
      [{ source: { family: 4, bytes: new Uint8Array(16) } }, 'address'],
      [{ username: 'x'.repeat(33) }, 'username'],
    ];
    for (const [o, field] of bad) {
      assert.throws(
        () => encodePayload({ ...p, ...o }),
        (e: unknown) => e instanceof ParseError && e.field === field,
        `encodePayload must refuse ${field} ${JSON.stringify(o)}`,
      );
    }
  });
});

// ---- property tests ---------------------------------------------------------------------------

const hexFpr = fc
  .oneof(fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.uint8Array({ minLength: 32, maxLength: 32 }))
  .map(bytesToHex);
const username = fc.stringMatching(/^[a-z_][a-z0-9_.-]{0,31}$/);
const source = fc.oneof(
  fc.constant('any' as const),
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((bytes) => ({ family: 4 as const, bytes })),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => ({ family: 6 as const, bytes })),
);
const portSpec: fc.Arbitrary<PortSpec> = fc
  .record({
    proto: fc.constantFrom('tcp' as const, 'udp' as const),
    port: fc.integer({ min: 1, max: 65535 }),
  })
  .map(({ proto, port }) => ({ proto, port }));
const accessList = fc.uniqueArray(portSpec, {
  minLength: 1,
  maxLength: ACCESS_MAX_ENTRIES,
  selector: (p) => `${p.proto}/${p.port}`,
});
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const CONTROL = /[\u0000-\u001f\u007f]/;
const command = fc.string({ unit: 'binary', minLength: 1, maxLength: 200 }).filter((s) => {
  const b = enc.encode(s);
  return b.length <= COMMAND_MAX_BYTES && !CONTROL.test(s) && strictUtf8.decode(b) === s;
});

const common = {
  timestamp: fc.maxSafeNat(),
  nonce: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  serverFingerprint: hexFpr,
  username,
  source,
};
const validPayload: fc.Arbitrary<Payload> = fc
  .oneof(
    fc.record({
      ...common,
      type: fc.constant('access' as const),
      access: accessList,
      timeoutSeconds: fc.integer({ min: 0, max: TIMEOUT_MAX_SECONDS }),
      command: fc.constant(null),
    }),
    fc.record({
      ...common,
      type: fc.constant('command' as const),
      access: fc.constant([]),
      timeoutSeconds: fc.constant(0),
      // U+FEFF first is a valid command too, and one a BOM-eating decoder would change
      command: fc.oneof(
        command,
        command.map((c) => `\uFEFF${c}`),
      ),
    }),
  )
  .map((fields) => makePayload({ ...fields }));

describe('payload properties', () => {
  test('decode(encode(p)) deep-equals p for any valid payload', () => {
    fc.assert(
      fc.property(validPayload, (p) => {
        assert.deepEqual(decodePayload(encodePayload(p)), p);
      }),
      { numRuns: 2000 },
    );
  });

  // Byte strings near valid ones reach deep into the decoder; pure noise mostly stops at byte 0.
  const mutated = fc
    .tuple(
      validPayload.map(encodePayload),
      fc.array(
        fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
    )
    .map(([bytes, edits]) => {
      const b = [...bytes];
      for (const [at, value, op] of edits) {
        const i = b.length === 0 ? 0 : at % (b.length + (op === 'insert' ? 1 : 0));
        if (op === 'set' && b.length > 0) b[i] = value;
        else if (op === 'insert') b.splice(i, 0, value);
        else if (op === 'delete') b.splice(i, 1);
      }
      return Uint8Array.from(b);
    });
  const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated);

  test('any byte string is either refused with a ParseError or is the canonical encoding of what it decodes to', () => {
    fc.assert(
      fc.property(anyBytes, (bytes) => {
        let p: Payload;
        try {
          p = decodePayload(bytes);
        } catch (e) {
          assert.ok(e instanceof SpaError && e instanceof ParseError, `non-ParseError thrown: ${String(e)}`);
          // decodePayload judges the version octet first, once it has two octets to read
          const version = bytes.length >= 2 && bytes.length <= PAYLOAD_MAX_BYTES ? bytes[0] : PAYLOAD_VERSION;
          assert.equal(e.code, version === PAYLOAD_VERSION ? 'PAYLOAD_MALFORMED' : 'PAYLOAD_VERSION');
          return;
        }
        assert.deepEqual(encodePayload(p), bytes);
      }),
      { numRuns: 5000 },
    );
  });
});

test('an IPv4-mapped IPv6 source is refused: an IPv4 address has one encoding, family 4', () => {
  const mapped = freshPayload();
  const bytes = encodePayload(mapped);
  // rewrite family 4 + 4 bytes as family 6 + ::ffff:a.b.c.d, keeping everything else
  const at = 26 + 1 + mapped.serverFingerprint.length / 2 + 1 + mapped.username.length; // addr_family
  assert.equal(bytes[at], 4);
  const v6 = Uint8Array.from([
    ...bytes.subarray(0, at),
    6,
    ...new Array<number>(10).fill(0),
    0xff,
    0xff,
    ...bytes.subarray(at + 1),
  ]);
  assert.throws(
    () => decodePayload(v6),
    (e: unknown) => e instanceof ParseError && e.field === 'address',
  );
  assert.throws(
    () => makePayload({ ...mapped, source: parseAddress('::ffff:198.51.100.2') }),
    (e: unknown) => e instanceof ParseError && e.field === 'address',
  );
});
