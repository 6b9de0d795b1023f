/**
 * GnuPG interop, with the real `gpg` binary in throwaway homes (one for the server side, one for
 * the client side; HOME points there too, so the user's ~/.gnupg is never read or written):
 * keys made by gpg work in openpgp.js as server and client keys, knocks made by
 * `gpg --sign --encrypt` open, and knocks made by seal() decrypt and verify in gpg.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { open, seal, serverIdentity } from '../../protocol/envelope.js';
import { parseFraming } from '../../protocol/framing.js';
import { PACKET_MAX_BYTES } from '../../protocol/limits.js';
import { encodePayload, type Payload } from '../../protocol/payload.js';
import { innerTags } from '../helpers/craft.js';
import { GpgHome, gpgUnavailable } from '../helpers/gpg.js';
import { freshPayload, keyFingerprints, signerMap, testKey } from '../helpers/keys.js';

const skip = gpgUnavailable();

interface Side {
  readonly fpr: string;
  readonly secret: openpgp.PrivateKey;
  readonly public: openpgp.PublicKey;
}

interface Family {
  readonly label: string;
  server: Side;
  client: Side;
}

async function side(home: GpgHome, fpr: string): Promise<Side> {
  const secret = await openpgp.readPrivateKey({ armoredKey: await home.exportSecret(fpr) });
  const pub = await openpgp.readKey({ armoredKey: await home.exportPublic(fpr) });
  return { fpr, secret, public: pub };
}

describe('GnuPG interop', { skip: skip ?? false }, () => {
  let srvHome: GpgHome;
  let cliHome: GpgHome;
  const families: Family[] = [];

  before(async () => {
    srvHome = new GpgHome('gpg-srv');
    cliHome = new GpgHome('gpg-cli');
    const [edSrv, rsaSrv, edCli, rsaCli] = await Promise.all([
      srvHome.generateEd25519('Srv <srv@example.test>'),
      srvHome.generateRsa3072('RSA Srv <rsa-srv@example.test>'),
      cliHome.generateEd25519('Cli <cli@example.test>'),
      cliHome.generateRsa3072('RSA Cli <rsa-cli@example.test>'),
    ]);
    // each side knows the other's public keys only
    for (const f of [edCli, rsaCli]) await srvHome.importKey(await cliHome.exportPublic(f));
    for (const f of [edSrv, rsaSrv]) await cliHome.importKey(await srvHome.exportPublic(f));
    families.push(
      { label: 'ed25519/cv25519', server: await side(srvHome, edSrv), client: await side(cliHome, edCli) },
      { label: 'RSA-3072', server: await side(srvHome, rsaSrv), client: await side(cliHome, rsaCli) },
    );
  });

  after(() => {
    srvHome?.destroy();
    cliHome?.destroy();
  });

  /** `gpg --sign --encrypt` of the encoded payload, binary, from the client's home. */
  async function gpgKnock(f: Family, p: Payload, extra: readonly string[] = []): Promise<Uint8Array> {
    const input = join(cliHome.dir, 'payload.bin');
    const output = join(cliHome.dir, 'knock.gpg');
    writeFileSync(input, encodePayload(p));
    await cliHome.ok([
      '--trust-model',
      'always',
      '--yes',
      '-u',
      f.client.fpr,
      '-r',
      f.server.fpr,
      ...extra,
      '-o',
      output,
      '--sign',
      '--encrypt',
      input,
    ]);
    return new Uint8Array(readFileSync(output));
  }

  async function openAsServer(f: Family, bytes: Uint8Array, now: Date) {
    return open(bytes, {
      server: await serverIdentity(f.server.secret),
      lookupSigner: signerMap([f.client.public]),
      now,
      maxSkewSeconds: 120,
    });
  }

  for (const label of ['ed25519/cv25519', 'RSA-3072']) {
    const fam = () => {
      const f = families.find((x) => x.label === label);
      assert.ok(f, `keys for ${label} were made`);
      return f;
    };

    test(`gpg-made ${label} keys are read by openpgp.js and serve as server and client keys`, async () => {
      const f = fam();
      const id = await serverIdentity(f.server.secret);
      assert.equal(id.fingerprint, f.server.fpr);
      assert.equal(id.recipientKeyIds.size, 1, 'one encryption subkey');
      assert.equal(f.client.public.getFingerprint().toUpperCase(), f.client.fpr);
      assert.ok(keyFingerprints(f.client.public).length >= 1);
      const now = new Date();
      const p = freshPayload({ server: f.server.fpr, now });
      const bytes = await seal(p, { signingKey: f.client.secret, serverKey: f.server.public, now });
      const opened = await openAsServer(f, bytes, now);
      assert.deepEqual(opened.payload, p);
      assert.equal(opened.signer.fingerprint, f.client.fpr);
    });

    test(`a ${label} knock made by gpg --sign --encrypt (default compression) opens`, async () => {
      const f = fam();
      const now = new Date();
      const p = freshPayload({ server: f.server.fpr, now });
      const bytes = await gpgKnock(f, p);
      assert.ok(bytes.length <= PACKET_MAX_BYTES, `${bytes.length} bytes`);
      assert.equal((await innerTags(bytes, f.server.secret, now))[0], openpgp.enums.packet.compressedData);
      const opened = await openAsServer(f, bytes, now);
      assert.deepEqual(opened.payload, p);
      assert.equal(opened.signer.fingerprint, f.client.fpr);
    });

    test(`a ${label} knock made by gpg with -z 0 (uncompressed) opens`, async () => {
      const f = fam();
      const now = new Date();
      const p = freshPayload({ server: f.server.fpr, now, type: 'command', command: 'deploy --now' });
      const bytes = await gpgKnock(f, p, ['-z', '0']);
      assert.deepEqual(await innerTags(bytes, f.server.secret, now), [
        openpgp.enums.packet.onePassSignature,
        openpgp.enums.packet.literalData,
        openpgp.enums.packet.signature,
      ]);
      assert.equal(parseFraming(bytes).recipients.length, 1);
      assert.deepEqual((await openAsServer(f, bytes, now)).payload, p);
    });

    test(`a ${label} knock made by gpg with --compress-algo zip opens, and one with bzip2 is refused as MSG_COMPRESSION`, async () => {
      const f = fam();
      const now = new Date();
      const zip = freshPayload({ server: f.server.fpr, now });
      assert.deepEqual(
        (await openAsServer(f, await gpgKnock(f, zip, ['--compress-algo', 'zip']), now)).payload,
        zip,
      );
      const bzip2 = await gpgKnock(f, freshPayload({ server: f.server.fpr, now }), [
        '--compress-algo',
        'bzip2',
      ]);
      await assert.rejects(openAsServer(f, bzip2, now), { code: 'MSG_COMPRESSION' });
    });

    test(`a ${label} knock made by seal() decrypts and verifies with gpg --decrypt`, async () => {
      const f = fam();
      const now = new Date();
      const p = freshPayload({ server: f.server.fpr, now });
      const input = join(srvHome.dir, 'sealed.bin');
      const output = join(srvHome.dir, 'sealed.out');
      writeFileSync(input, await seal(p, { signingKey: f.client.secret, serverKey: f.server.public, now }));
      const r = await srvHome.run(['--trust-model', 'always', '--yes', '-o', output, '--decrypt', input]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(
        r.status.some((l) => l.startsWith('GOODSIG ')),
        r.status.join('\n'),
      );
      const valid = r.status.find((l) => l.startsWith('VALIDSIG '))?.split(' ');
      assert.ok(valid, r.status.join('\n'));
      assert.equal(valid[1], f.client.fpr, 'signed by the client key');
      assert.equal(valid.at(-1), f.client.fpr, 'whose primary is the client key');
      assert.deepEqual(new Uint8Array(readFileSync(output)), encodePayload(p));
    });
  }

  test('a gpg knock signed by an enrolled key but for another server is not for us, and a stranger is unknown', async () => {
    const ed = families.find((x) => x.label === 'ed25519/cv25519');
    const rsa = families.find((x) => x.label === 'RSA-3072');
    assert.ok(ed && rsa);
    const now = new Date();
    const bytes = await gpgKnock(ed, freshPayload({ server: ed.server.fpr, now }));
    await assert.rejects(openAsServer(rsa, bytes, now), { code: 'PKT_NOT_FOR_US' });
    await assert.rejects(
      open(bytes, {
        server: await serverIdentity(ed.server.secret),
        lookupSigner: signerMap([rsa.client.public]),
        now,
        maxSkewSeconds: 120,
      }),
      { code: 'SIGNER_UNKNOWN' },
    );
  });

  test('openpgp.js-made v4 keys work in gpg: gpg opens a sealed knock, and a gpg knock opens in open()', async () => {
    const home = new GpgHome('gpg-js');
    try {
      const [server, client] = await Promise.all([testKey('gpg-js-server'), testKey('gpg-js-client')]);
      await home.importKey(server.armoredPrivate);
      await home.importKey(client.armoredPrivate);
      const now = new Date();
      const p = freshPayload({ server, now });
      const input = join(home.dir, 'sealed.bin');
      writeFileSync(
        input,
        await seal(p, { signingKey: client.privateKey, serverKey: server.publicKey, now }),
      );
      const r = await home.run([
        '--trust-model',
        'always',
        '--yes',
        '-o',
        join(home.dir, 'out'),
        '--decrypt',
        input,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(
        r.status.some((l) => l.startsWith(`VALIDSIG ${client.fingerprint} `)),
        r.status.join('\n'),
      );
      assert.deepEqual(new Uint8Array(readFileSync(join(home.dir, 'out'))), encodePayload(p));

      writeFileSync(join(home.dir, 'p.bin'), encodePayload(p));
      await home.ok([
        '--trust-model',
        'always',
        '--yes',
        '-u',
        client.fingerprint,
        '-r',
        server.fingerprint,
        '-o',
        join(home.dir, 'k.gpg'),
        '--sign',
        '--encrypt',
        join(home.dir, 'p.bin'),
      ]);
      const opened = await open(new Uint8Array(readFileSync(join(home.dir, 'k.gpg'))), {
        server: await serverIdentity(server.privateKey),
        lookupSigner: signerMap([client]),
        now,
        maxSkewSeconds: 120,
      });
      assert.deepEqual(opened.payload, p);
    } finally {
      home.destroy();
    }
  });
});
