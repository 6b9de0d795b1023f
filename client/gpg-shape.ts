/**
 * GnuPG mode checks what gpg made before it is sent. A gpg.conf can change gpg's output behind
 * our back: `armor`, `throw-keyids` or `hidden-recipient` make a knock the server drops without a
 * word (it never answers), and `recipient` lines add a second reader. gpg.ts forces the options a
 * knock needs; this module is the second line: the packet must pass the server's own framing
 * pre-check (protocol/framing.ts, SPEC.md §3 and §7 steps 2-3) and be encrypted to the server key alone, or spa
 * reports an error instead of sending.
 */
import { ConfigError, isSpaError } from '../protocol/errors.js';
import { parseFraming } from '../protocol/framing.js';

/**
 * Key ids (16 uppercase hex) of the keys that can encrypt (own capability `e`) under the primary
 * key `fingerprint`, from `gpg --with-colons --fixed-list-mode` output: the key ids a knock for
 * that server may name in its session key packet.
 */
export function encryptionKeyIds(colons: string, fingerprint: string): Set<string> {
  const out = new Set<string>();
  let block: string[] = [];
  let blockFpr = '';
  let expectFpr = false;
  const flush = () => {
    if (blockFpr === fingerprint) for (const id of block) out.add(id);
  };
  for (const line of colons.split(/\r?\n/)) {
    const f = line.split(':');
    const type = f[0];
    if (type === 'pub' || type === 'sec') {
      flush();
      block = [];
      blockFpr = '';
      expectFpr = true;
    } else if (type === 'fpr' && expectFpr) {
      blockFpr = (f[9] ?? '').toUpperCase();
      expectFpr = false;
    } else if (type === 'sub' || type === 'ssb') {
      expectFpr = false;
    }
    if (type === 'pub' || type === 'sec' || type === 'sub' || type === 'ssb') {
      const keyId = (f[4] ?? '').toUpperCase();
      if ((f[11] ?? '').includes('e') && /^[0-9A-F]{16}$/.test(keyId)) block.push(keyId);
    }
  }
  flush();
  return out;
}

const CONF_HINT =
  'look for options that change gpg output (armor, throw-keyids, recipient, hidden-recipient) in the gpg home gpg.conf';

function dropped(why: string): ConfigError {
  return new ConfigError('IO', `gpg made a knock the server would drop: ${why}`, { hint: CONF_HINT });
}

/** Throws (IO) unless `packet` is a binary knock encrypted to `serverKeyIds` and nobody else. */
export function checkGpgKnock(packet: Uint8Array, serverKeyIds: ReadonlySet<string>): void {
  let recipients;
  try {
    recipients = parseFraming(packet).recipients;
  } catch (e) {
    if (isSpaError(e)) throw dropped(e.message.replace(/^openpgp framing: /, ''));
    throw e;
  }
  for (const r of recipients) {
    if (r.keyId === null) throw dropped('a hidden recipient (key id thrown away)');
    if (!serverKeyIds.has(r.keyId)) {
      throw dropped(`it is also encrypted to key id ${r.keyId}, a recipient that is not the server key`);
    }
  }
}
