/**
 * Step 6's first half (SPEC.md §7): the session key of a knock, from the PKESK that names one of
 * the server's decryption key packets, which serverIdentity() (envelope.ts) validated once.
 */
import * as openpgp from 'openpgp';
import { decryptEcdhSessionKey } from './ecdh.js';
import type { ServerIdentity } from './envelope.js';
import { T, tagOf } from './structure.js';

/**
 * Decrypts the session key with the PKESK that names one of our (already validated) decryption
 * key packets; openpgp.js then decrypts and integrity-checks the data with it. Equivalent to
 * `message.decrypt([serverKey])` minus re-verifying our own key's self-signatures per packet.
 */
export async function decryptSessionKey(
  message: openpgp.Message<Uint8Array>,
  server: ServerIdentity,
): Promise<openpgp.SessionKey[]> {
  for (const p of message.packets) {
    if (tagOf(p) !== T.publicKeyEncryptedSessionKey) continue;
    // decrypt() is typed private in openpgp.js's .d.ts, public at run time
    const pkesk = p as unknown as {
      decrypt(key: openpgp.SecretKeyPacket | openpgp.SecretSubkeyPacket): Promise<void>;
      publicKeyID: openpgp.KeyID;
      sessionKey: Uint8Array | null;
      sessionKeyAlgorithm: openpgp.enums.symmetric | null;
    };
    const id = pkesk.publicKeyID.toHex().toUpperCase();
    const fast = server.ecdhKeys.get(id);
    if (fast) return [decryptEcdhSessionKey(fast, pkesk)];
    const keyPacket = server.decryptionKeys.get(id);
    if (!keyPacket) continue;
    await pkesk.decrypt(keyPacket);
    if (!pkesk.sessionKey) throw new Error('no session key');
    const algorithm =
      pkesk.sessionKeyAlgorithm === null
        ? null
        : openpgp.enums.read(openpgp.enums.symmetric, pkesk.sessionKeyAlgorithm);
    // v6 PKESKs carry no algorithm (SEIPDv2 names it); openpgp.js then ignores this field
    return [{ data: pkesk.sessionKey, algorithm: algorithm as openpgp.enums.symmetricNames }];
  }
  throw new Error('no session key packet for this server');
}
