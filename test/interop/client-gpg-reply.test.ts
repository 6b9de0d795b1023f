/**
 * `spa --gpg-home-dir DIR --retries N`: every knock, retries included, is sealed by the real gpg
 * (a fresh nonce each time), and the signed reply is verified against the server key gpg
 * encrypts to, exported from that gpg home or read from `--gpg-recv FILE`. A reply signed by
 * another key of the same gpg home is ignored. The server is a fake on loopback that opens the
 * knock with openpgp.js and answers as spad would (SPEC.md §12).
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Payload } from '../../protocol/payload.js';
import { type TestKey, testKey, testServer } from '../helpers/keys.js';
import { type Home, makeHome, openKnock, signedReply, spa } from '../unit/client-fixtures.js';
import { type GpgHome, gpgAvailable, makeGpgHome, readPublic } from './client-gpg-fixtures.js';

const skip = gpgAvailable() ? false : 'gpg is not installed';

describe('spa --gpg-home-dir --retries verifies the signed reply', { skip }, () => {
  let G: GpgHome;
  let H: Home;
  let server: TestKey;
  let other: TestKey;
  let bobPublic: Awaited<ReturnType<typeof readPublic>>;

  before(async () => {
    [server, other] = await Promise.all([testKey('server'), testKey('other-server')]);
    G = await makeGpgHome();
    const bobFpr = G.genKey('Bob <bob@example.test>');
    G.importArmored(server.armoredPublic);
    G.importArmored(other.armoredPublic);
    bobPublic = await readPublic(G.exportPublic(bobFpr));
    H = await makeHome([], []);
  });
  after(async () => {
    await H.cleanup();
    await G.cleanup();
  });

  /** Answers knock n (1-based) with replies signed by `signer(n)`, or nothing when it is null. */
  async function fakeServer(signer: (n: number) => TestKey | null) {
    const identity = await testServer(server);
    const sock = createSocket('udp4');
    const payloads: Payload[] = [];
    sock.on('message', (msg, rinfo) => {
      void (async () => {
        const { payload } = await openKnock(new Uint8Array(msg), identity, [bobPublic]);
        payloads.push(payload);
        const key = signer(payloads.length);
        if (!key) return;
        sock.send(await signedReply(payload, key), rinfo.port, rinfo.address);
      })();
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    return { port: sock.address().port, payloads, close: () => sock.close() };
  }

  const knock = (port: number, recv: string, retries: string) =>
    spa([
      '--home',
      H.home,
      '--gpg-home-dir',
      G.dir,
      '--gpg-recv',
      recv,
      '-p',
      String(port),
      '-A',
      'tcp/22',
      '--retries',
      retries,
      '127.0.0.1',
    ]);

  test('the first knock is lost; the retry, sealed anew by gpg, gets a reply that verifies', async () => {
    const srv = await fakeServer((n) => (n === 1 ? null : server));
    try {
      const r = await knock(srv.port, server.fingerprint, '2');
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /^spa: access granted: tcp\/22 for 30 s$/m);
      assert.equal(srv.payloads.length, 2);
      assert.notDeepEqual(srv.payloads[0]?.nonce, srv.payloads[1]?.nonce, 'each retry is a fresh knock');
    } finally {
      srv.close();
    }
  });

  test('a reply signed by another key of the gpg home is ignored: exit 1 after the retries', async () => {
    const srv = await fakeServer(() => other);
    try {
      const r = await knock(srv.port, server.fingerprint, '1');
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, /^spa: error: no verified reply from 127\.0\.0\.1 after 2 knocks$/m);
      assert.equal(srv.payloads.length, 2);
    } finally {
      srv.close();
    }
  });

  test('with --gpg-recv FILE the reply is verified with the key in that file', async () => {
    const file = join(H.root, 'server.asc');
    await writeFile(file, server.armoredPublic, { mode: 0o600 });
    const srv = await fakeServer(() => server);
    try {
      const r = await knock(srv.port, file, '0');
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /^spa: access granted: tcp\/22 for 30 s$/m);
    } finally {
      srv.close();
    }
  });
});
