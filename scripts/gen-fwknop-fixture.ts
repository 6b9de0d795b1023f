/**
 * Writes test/e2e/fixtures/fwknop/: throw-away client keys (example.test identities, no
 * passphrases: nobody's real keys) and an access.conf in fwknopd's syntax with the awkward cases
 * `spa-keys import-fwknop` must report (SPEC.md §11, README "Moving from fwknop"):
 *   alice  RSA-2048, by GPG_FINGERPRINT_ID, HMAC key, REQUIRE_SOURCE_ADDRESS Y;
 *   bob    Ed25519/Curve25519, by a 32-bit GPG_REMOTE_ID, RESTRICT_PORTS, REQUIRE_USERNAME,
 *          ACCESS_EXPIRE, ENABLE_CMD_EXEC and DESTINATION (not carried: warnings);
 *   carol  Ed25519, by fingerprint; her 32-bit key id is shared with carol-twin (a real
 *          collision, found here by trying creation times), so the stanza naming that short id
 *          is refused as ambiguous;
 *   a Rijndael-only stanza and a FORCE_NAT stanza (refused).
 * Usage: npm run build && node dist/scripts/gen-fwknop-fixture.js   (rewrites every file)
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as openpgp from 'openpgp';

const DIR = new URL('../../test/e2e/fixtures/fwknop/', import.meta.url);
const DATE = new Date('2026-01-01T00:00:00Z');

async function gen(type: 'rsa' | 'ecc', name: string, email: string): Promise<openpgp.PrivateKey> {
  const common = { userIDs: [{ name, email }], format: 'object' as const, date: DATE };
  const { privateKey } =
    type === 'rsa'
      ? await openpgp.generateKey({ ...common, type: 'rsa', rsaBits: 2048 })
      : await openpgp.generateKey({ ...common, type: 'ecc', curve: 'ed25519Legacy' });
  return privateKey;
}

/** The v4 fingerprint of a public key packet body (RFC 4880 §12.2). */
function v4Fingerprint(body: Uint8Array): Buffer {
  return createHash('sha1')
    .update(Buffer.from([0x99, body.length >> 8, body.length & 255]))
    .update(body)
    .digest();
}

/**
 * Two Ed25519 primary keys (no subkeys) with one secret and different creation times whose
 * fingerprints end in the same 32 bits: a birthday search over creation times (~2^16 tries).
 */
async function twins(): Promise<[openpgp.PrivateKey, openpgp.PrivateKey]> {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name: 'carol', email: 'carol@example.test' }],
    format: 'object',
    date: DATE,
  });
  // typed private in the .d.ts, public at run time
  const body = (privateKey.keyPacket as unknown as { writePublicKey(): Uint8Array }).writePublicKey();
  const t0 = Math.floor(DATE.getTime() / 1000) - 4_000_000;
  const seen = new Map<number, number>();
  let pair: [number, number] | null = null;
  for (let i = 0; i < 2_000_000 && !pair; i++) {
    const ts = t0 + i;
    body[1] = ts >>> 24;
    body[2] = (ts >>> 16) & 255;
    body[3] = (ts >>> 8) & 255;
    body[4] = ts & 255;
    const low = v4Fingerprint(body).readUInt32BE(16);
    const prev = seen.get(low);
    if (prev !== undefined) pair = [prev, ts];
    else seen.set(low, ts);
  }
  if (!pair) throw new Error('no collision found');
  const out: openpgp.PrivateKey[] = [];
  for (const [ts, uid] of [
    [pair[0], { name: 'carol', email: 'carol@example.test' }],
    [pair[1], { name: 'carol twin', email: 'carol-twin@example.test' }],
  ] as const) {
    const k = await openpgp.readPrivateKey({ armoredKey: privateKey.armor() });
    // typed read-only in openpgp.js's .d.ts; a new creation time makes a new key (and fingerprint)
    const packet = k.keyPacket as unknown as { created: Date; computeFingerprintAndKeyID(): Promise<void> };
    packet.created = new Date(ts * 1000);
    await packet.computeFingerprintAndKeyID();
    (k as unknown as { subkeys: unknown[] }).subkeys = [];
    const { privateKey: re } = await openpgp.reformatKey({
      privateKey: k,
      userIDs: [uid],
      date: DATE,
      format: 'object',
    });
    out.push(re);
  }
  const [a, b] = out;
  if (!a || !b || a.getFingerprint().slice(-8) !== b.getFingerprint().slice(-8)) throw new Error('not twins');
  return [a, b];
}

const alice = await gen('rsa', 'alice', 'alice@example.test');
const bob = await gen('ecc', 'bob', 'bob@example.test');
const [carol, twin] = await twins();
const keys = { alice, bob, carol, 'carol-twin': twin };
mkdirSync(DIR, { recursive: true });
for (const [n, k] of Object.entries(keys)) {
  writeFileSync(new URL(`${n}.sec.asc`, DIR), k.armor());
  writeFileSync(new URL(`${n}.pub.asc`, DIR), k.toPublic().armor());
}
const fpr = (k: openpgp.PrivateKey) => k.getFingerprint().toUpperCase();
const short = (k: openpgp.PrivateKey) => fpr(k).slice(-8);
const hmacAlice = randomBytes(64).toString('base64');
const rijndael = randomBytes(32).toString('base64');
const hmacDave = randomBytes(64).toString('base64');
const meta = {
  alice: { fingerprint: fpr(alice), hmac_key_base64: hmacAlice },
  bob: { fingerprint: fpr(bob), short_id: short(bob) },
  carol: { fingerprint: fpr(carol), short_id: short(carol) },
  'carol-twin': { fingerprint: fpr(twin), short_id: short(twin) },
};
writeFileSync(new URL('keys.json', DIR), `${JSON.stringify(meta, null, 2)}\n`);
writeFileSync(
  new URL('access.conf', DIR),
  `# fwknopd access.conf of a small team, as it might be before moving to spad.
# (test fixture for spa-keys import-fwknop; made by scripts/gen-fwknop-fixture.ts)

# --- alice: RSA key, named by full fingerprint, with an HMAC key
SOURCE                  ANY
OPEN_PORTS              tcp/22
FW_ACCESS_TIMEOUT       30
MAX_FW_TIMEOUT          120
REQUIRE_SOURCE_ADDRESS  Y
GPG_HOME_DIR            /etc/fwknop/gnupg
GPG_DECRYPT_ID          0123456789ABCDEF
GPG_ALLOW_NO_PW         Y
GPG_REQUIRE_SIG         Y
GPG_FINGERPRINT_ID      ${fpr(alice)}
HMAC_KEY_BASE64         ${hmacAlice}
HMAC_DIGEST_TYPE        SHA256

# --- bob: named by a 32-bit id (unique here), ports minus a restricted one, and options
# --- spa has no equivalent for (warned)
SOURCE                  198.51.100.0/24, 203.0.113.0/24
DESTINATION             ANY
OPEN_PORTS              tcp/22, udp/53, tcp/8080
RESTRICT_PORTS          tcp/8080
FW_ACCESS_TIMEOUT       20
REQUIRE_USERNAME        bob
ACCESS_EXPIRE           12/31/2099
ENABLE_CMD_EXEC         Y
CMD_EXEC_USER           nobody
GPG_ALLOW_NO_PW         Y
GPG_REMOTE_ID           ${short(bob)}

# --- carol, by fingerprint
SOURCE                  ANY
OPEN_PORTS              tcp/22
REQUIRE_SOURCE_ADDRESS  Y
GPG_ALLOW_NO_PW         Y
GPG_FINGERPRINT_ID      ${fpr(carol)}

# --- an old stanza naming a 32-bit id that two keys in the keyring share: refused
SOURCE                  ANY
OPEN_PORTS              tcp/22
GPG_ALLOW_NO_PW         Y
GPG_REMOTE_ID           ${short(twin)}

# --- dave: Rijndael only: refused (spa has no shared-key mode)
SOURCE                  ANY
OPEN_PORTS              tcp/22
KEY_BASE64              ${rijndael}
HMAC_KEY_BASE64         ${hmacDave}

# --- a NAT stanza: refused until spa has a gateway mode
SOURCE                  ANY
OPEN_PORTS              tcp/22
FORCE_NAT               192.0.2.10 22
GPG_ALLOW_NO_PW         Y
GPG_FINGERPRINT_ID      ${fpr(bob)}
`,
);
console.log(`gen-fwknop-fixture: wrote ${DIR.pathname}`);
