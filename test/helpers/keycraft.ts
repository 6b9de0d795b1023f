/**
 * Public keys that a key's owner never made, built from a real key the way a relay in transit or
 * a hostile sender could: garbage copies of a self-signature appended (same fingerprint), an
 * unsigned user id inserted first, a user id revoked by its owner, user ids that carry terminal
 * escape sequences. Each returns an openpgp.js key object; `.armor()` gives what `spa-keys add`
 * would be handed.
 */
import * as openpgp from 'openpgp';

/** A signature packet parsed again from its own bytes, `mutate` applied to the body first. */
function copySignature(
  sig: openpgp.SignaturePacket,
  mutate: (body: Uint8Array) => void,
): openpgp.SignaturePacket {
  const body = sig.write() as Uint8Array;
  const copy = new Uint8Array(body);
  mutate(copy);
  const out = new openpgp.SignaturePacket();
  out.read(copy);
  return out;
}

/**
 * `key` with `n` garbage copies of its first user id's self-certification appended: the hashed
 * data and the digest prefix are intact (so openpgp.js runs the full public-key verification on
 * each) and one byte of the signature value differs (so each fails). The fingerprint is unchanged.
 */
export async function bloatedKey(key: openpgp.PublicKey, n: number): Promise<openpgp.PublicKey> {
  const bloated = await openpgp.readKey({ binaryKey: key.write() as Uint8Array });
  const user = bloated.users[0];
  const real = user?.selfCertifications[0];
  if (!user || !real) throw new Error('bloatedKey: the key has no self-certified user id');
  for (let i = 0; i < n; i++) {
    user.selfCertifications.push(
      copySignature(real, (b) => {
        // the last bytes are the signature value's last MPI; change one of them, differently each time
        const at = b.length - 1 - (i % 8);
        b[at] = (b[at] ?? 0) ^ (1 + (i % 255));
      }),
    );
  }
  return bloated as openpgp.PublicKey;
}

/** `key` with a user id that carries no signature at all placed before its own user ids. */
export async function withUnsignedUserId(key: openpgp.PublicKey, userId: string): Promise<openpgp.PublicKey> {
  const packets = new openpgp.PacketList<openpgp.AnyPacket>();
  const uid = openpgp.UserIDPacket.fromObject(parseUserId(userId));
  const original = key.toPacketList();
  packets.push(original[0] as openpgp.AnyPacket, uid, ...(original.slice(1) as openpgp.AnyPacket[]));
  return new openpgp.PublicKey(packets as openpgp.PacketList<openpgp.AnyKeyPacket>);
}

/** "Name <mail>" → { name, email }, keeping the exact text when it has no angle brackets. */
function parseUserId(userId: string): { name?: string; email?: string } {
  const m = /^(.*?)\s*<([^>]*)>$/.exec(userId);
  return m ? { name: m[1] ?? '', email: m[2] ?? '' } : { name: userId };
}

/** A fresh ed25519 key whose user ids are exactly these strings (self-certified by openpgp.js). */
export async function keyWithUserIds(
  userIds: readonly string[],
  date = new Date('2025-01-01T00:00:00Z'),
): Promise<openpgp.PrivateKey> {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: userIds.map(parseUserId),
    date,
    format: 'object',
  });
  return privateKey;
}

/**
 * `key` (private) with its user id number `index` revoked by the owner: a certification
 * revocation signature over that user id.
 */
export async function withRevokedUserId(key: openpgp.PrivateKey, index: number): Promise<openpgp.PublicKey> {
  const user = key.users[index];
  if (!user?.userID) throw new Error(`withRevokedUserId: no user id ${index}`);
  const dataToSign = { userID: user.userID, key: key.keyPacket };
  // createSignaturePacket is internal to openpgp.js; build the revocation with the packet API
  const sig = new openpgp.SignaturePacket();
  sig.signatureType = openpgp.enums.signature.certRevocation;
  sig.publicKeyAlgorithm = key.keyPacket.algorithm;
  sig.hashAlgorithm = openpgp.enums.hash.sha256;
  sig.reasonForRevocationFlag = openpgp.enums.reasonForRevocation.userIDInvalid;
  sig.reasonForRevocationString = '';
  const at = new Date(key.getCreationTime().getTime() + 60_000);
  const sign = sig.sign as unknown as (
    k: openpgp.SecretKeyPacket,
    data: unknown,
    date: Date,
    detached: boolean,
    config: openpgp.Config,
  ) => Promise<void>;
  await sign.call(sig, key.keyPacket as openpgp.SecretKeyPacket, dataToSign, at, false, openpgp.config);
  const pub = key.toPublic();
  pub.users[index]?.revocationSignatures.push(sig);
  return pub;
}
