/**
 * Prints the size on the wire (UDP payload bytes) of a sealed knock for each key type and maker:
 * openpgp.js seal() with the fixed keys of test/vectors/keys/, and `gpg --sign --encrypt` with
 * keys gpg makes in a throwaway home (skipped when gpg is missing). Three payloads: a typical
 * access knock (tcp/22, IPv4 source), the largest access knock (16 ports, IPv6 source, 32-char
 * user) and the largest valid payload (a 512-byte command).
 *
 * Usage: npx tsc -p . && node dist/scripts/packet-sizes.js
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { parseAddress } from '../protocol/address.js';
import { seal } from '../protocol/envelope.js';
import { COMMAND_MAX_BYTES, PACKET_MAX_BYTES } from '../protocol/limits.js';
import { encodePayload, type Payload } from '../protocol/payload.js';
import { GpgHome, gpgUnavailable } from '../test/helpers/gpg.js';
import { freshPayload, type TestKey, vectorKey } from '../test/helpers/keys.js';

interface Row {
  keys: string;
  maker: string;
  typical: number;
  access: number;
  largest: number;
  payloadBytes: [number, number, number];
}

/** Printable, poorly compressible text (a fixed LCG), so compression does not flatter gpg. */
function noisyCommand(n: number): string {
  let x = 12345;
  let s = '';
  while (s.length < n) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += String.fromCharCode(33 + ((x >>> 16) % 94));
  }
  return s;
}

function payloads(server: string, now: Date): [Payload, Payload, Payload] {
  const typical = freshPayload({ server, now });
  const access = freshPayload({
    server,
    now,
    username: 'a'.repeat(32),
    source: parseAddress('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'),
    access: Array.from({ length: 16 }, (_, i) => ({ proto: 'tcp' as const, port: 60000 + i })),
    timeoutSeconds: 3600,
  });
  const largest = freshPayload({
    server,
    now,
    type: 'command',
    username: 'a'.repeat(32),
    source: parseAddress('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'),
    command: noisyCommand(COMMAND_MAX_BYTES),
  });
  return [typical, access, largest];
}

async function sealRow(keys: string, server: TestKey, client: TestKey): Promise<Row> {
  const now = new Date();
  const [a, m, b] = payloads(server.fingerprint, now);
  const size = async (p: Payload) =>
    (await seal(p, { signingKey: client.privateKey, serverKey: server.publicKey, now })).length;
  return {
    keys,
    maker: 'seal() (openpgp.js)',
    typical: await size(a),
    access: await size(m),
    largest: await size(b),
    payloadBytes: [encodePayload(a).length, encodePayload(m).length, encodePayload(b).length],
  };
}

async function gpgRows(): Promise<Row[]> {
  const why = gpgUnavailable();
  if (why) {
    console.log(`(gpg rows skipped: ${why})`);
    return [];
  }
  const home = new GpgHome('sizes');
  try {
    const rows: Row[] = [];
    const kinds: Array<[string, () => Promise<string>, () => Promise<string>]> = [
      [
        'gpg ed25519/cv25519',
        () => home.generateEd25519('Srv <srv@example.test>'),
        () => home.generateEd25519('Cli <cli@example.test>'),
      ],
      [
        'gpg RSA-3072',
        () => home.generateRsa3072('RSA Srv <rsrv@example.test>'),
        () => home.generateRsa3072('RSA Cli <rcli@example.test>'),
      ],
    ];
    for (const [label, makeServer, makeClient] of kinds) {
      const srv = await makeServer();
      const cli = await makeClient();
      const now = new Date();
      const [a, m, b] = payloads(srv, now);
      for (const z of [[], ['-z', '0']]) {
        const size = async (p: Payload) => {
          writeFileSync(join(home.dir, 'p.bin'), encodePayload(p));
          const out = join(home.dir, 'k.gpg');
          await home.ok([
            '--trust-model',
            'always',
            '--yes',
            '-u',
            cli,
            '-r',
            srv,
            ...z,
            '-o',
            out,
            '--sign',
            '--encrypt',
            join(home.dir, 'p.bin'),
          ]);
          return readFileSync(out).length;
        };
        rows.push({
          keys: label,
          maker: `gpg --sign --encrypt${z.length ? ' -z 0' : ''}`,
          typical: await size(a),
          access: await size(m),
          largest: await size(b),
          payloadBytes: [encodePayload(a).length, encodePayload(m).length, encodePayload(b).length],
        });
      }
      const secret = async (fpr: string) =>
        openpgp.readPrivateKey({ armoredKey: await home.exportSecret(fpr) });
      const s = await secret(srv);
      const c = await secret(cli);
      const asTest = (k: openpgp.PrivateKey): TestKey => ({
        name: label,
        privateKey: k,
        publicKey: k.toPublic(),
        fingerprint: k.getFingerprint().toUpperCase(),
        armoredPrivate: '',
        armoredPublic: '',
      });
      rows.push(await sealRow(label, asTest(s), asTest(c)));
    }
    return rows;
  } finally {
    home.destroy();
  }
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const pairs: Array<[string, string, string]> = [
    ['v4 Ed25519/Curve25519 (legacy)', 'server-ecc', 'client-ecc'],
    ['v6 Ed25519/X25519', 'server-v6', 'client-v6'],
    ['v6 Ed25519/X25519, SEIPDv2 server', 'server-v6-aead', 'client-v6'],
    ['RSA-4096 both sides', 'server-rsa4096', 'client-rsa4096'],
  ];
  for (const [label, s, c] of pairs) rows.push(await sealRow(label, await vectorKey(s), await vectorKey(c)));
  rows.push(...(await gpgRows()));

  const head = ['keys', 'made by', 'typical', '16 ports', 'largest', 'payload bytes'];
  const table = rows.map((r) => [
    r.keys,
    r.maker,
    String(r.typical),
    String(r.access),
    `${r.largest}${r.largest > PACKET_MAX_BYTES ? ' (too long)' : ''}`,
    r.payloadBytes.join(' / '),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  console.log(line(head));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const row of table) console.log(line(row));
  console.log(
    `\ntypical: access tcp/22 from an IPv4 address; 16 ports: 16 tcp ports, 32-char user, IPv6 ` +
      `source; largest: command of ${COMMAND_MAX_BYTES} bytes, ` +
      `32-char user, IPv6 source. Limit PACKET_MAX_BYTES = ${PACKET_MAX_BYTES}.`,
  );
}

await main();
