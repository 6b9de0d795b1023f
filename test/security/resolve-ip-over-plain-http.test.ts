/**
 * Attack: `spa -R http://...` asks a resolver for the address the knock opens the port for. Over
 * plain HTTP anyone on the path (open Wi-Fi, a hostile hotspot) can answer instead, with their
 * own address, and the user signs a knock that opens the port for the attacker. So plain http is
 * refused unless the user says `--insecure-resolve`, and then spa warns loudly each time. The
 * answer itself must be one unicast address: not 0.0.0.0, ::, a multicast or a broadcast address.
 *
 * The "resolver" here is a local HTTP server on 127.0.0.1 answering as the attacker would.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseTestOutput, spa, useKnockRig } from '../unit/client-fixtures.js';

const ANSWERS: Record<string, string> = {
  '/attacker': '203.0.113.66\n',
  '/zero': '0.0.0.0',
  '/unspecified6': '::',
  '/multicast': '224.0.0.1',
  '/multicast6': 'ff02::1',
  '/broadcast': '255.255.255.255',
};

describe('attack: -R over plain http lets anyone on the path choose the address a knock opens', () => {
  const rig = useKnockRig();
  let server: Server;
  let base: string;
  let hits = 0;

  before(async () => {
    server = createServer((req, res) => {
      hits++;
      res.end(ANSWERS[req.url ?? ''] ?? '?');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const dry = (args: readonly string[]) =>
    spa(['--home', rig.H.home, '-A', 'tcp/22', ...args, '--test', '127.0.0.1']);

  test('-R http://... is refused as a usage error, and the resolver is not even asked', async () => {
    const before = hits;
    const r = await dry(['-R', `${base}/attacker`]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^spa: error: -R\/--resolve-ip-http: plain http:\/\/ is refused/m);
    assert.match(r.err, /^spa: hint: .*https:\/\/.*--insecure-resolve/m);
    assert.equal(r.out, '');
    assert.equal(hits, before);
  });

  test('an rc stanza with an http:// resolve-ip-http is refused the same way', async () => {
    const rc = join(rig.H.root, 'http.rc');
    await writeFile(rc, `[cafe]\nresolve-ip-http = ${base}/attacker\n`, { mode: 0o600 });
    const r = await dry(['--rc-file', rc, '-n', 'cafe']);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^spa: error: http\.rc \[cafe\] resolve-ip-http: plain http:\/\/ is refused/m);
  });

  test('with --insecure-resolve the http answer is used, with a loud warning naming the address', async () => {
    const r = await dry(['-R', `${base}/attacker`, '--insecure-resolve']);
    assert.equal(r.code, 0, r.err);
    assert.equal(parseTestOutput(r.out).payload.source, '203.0.113.66');
    assert.match(
      r.err,
      /^spa: warning: the address to open for \(203\.0\.113\.66\) came over plain http from 127\.0\.0\.1:\d+/m,
    );
  });

  test('an https:// URL needs no flag (here nothing listens: a runtime error, not a refusal)', async () => {
    const r = await dry(['-R', 'https://127.0.0.1:1/ip']);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /^spa: error: -R https:\/\/127\.0\.0\.1:1\/ip: ECONNREFUSED/m);
  });

  for (const path of Object.keys(ANSWERS).filter((p) => p !== '/attacker')) {
    test(`a resolver answer of ${ANSWERS[path]} is refused: not one unicast address`, async () => {
      const r = await dry(['-R', `${base}${path}`, '--insecure-resolve']);
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, /^spa: error: -R .*: the answer .* is not a unicast address/m);
    });
  }
});
