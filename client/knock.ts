/**
 * One knock, as a library: `prepareKnock` does everything that does not depend on the moment
 * (resolve the server, pick and unlock keys, choose the source address, open the UDP socket);
 * `seal` makes a fresh packet (new timestamp and nonce each time, so `spa connect` can knock
 * again); `send` puts it on the wire as one datagram. `buildKnock` + `sendKnock` are the
 * one-shot form.
 *
 * Speed matters (one knock, whole process: target 120 ms; the bin runs from a one-file bundle
 * with a code cache, client/cli.ts): keys of the default profile are sealed with node:crypto
 * (protocol/native-seal.ts) and openpgp.js is not loaded at all; otherwise it is imported on first use
 * and with --gpg-home-dir only to verify a signed reply (--retries), the import starts before DNS and file reads so they overlap, and
 * the independent steps (destination + socket, source address, keys) run concurrently.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type * as openpgp from 'openpgp';
import { pgp } from '../keyring/inspect.js';
import { type Address, formatAddress } from '../protocol/address.js';
import { ConfigError } from '../protocol/errors.js';
import { PACKET_MAX_BYTES } from '../protocol/limits.js';
import { encodePayload, makePayload, type Payload } from '../protocol/payload.js';
import type { GpgOptions } from './gpg-run.js';
import { keyFilePath } from '../keyring/lookup.js';
import {
  findOwnKey,
  findOwnRecord,
  findServerKey,
  findServerRecord,
  ownUsername,
  usernameFor,
} from './keys.js';
import { type AskPassphrase, unlockKey } from './passphrase.js';
import type { Settings } from './settings.js';
import { type Destination, KnockSocket, resolveDestination } from './transport.js';

export interface KnockRequest {
  readonly settings: Settings;
  /** The client home (keystore). */
  readonly home: string;
  /** Open the UDP socket even if the source address does not need it (false for --test). */
  readonly willSend: boolean;
  /** Access to ask for when neither -A nor a stanza says (spa connect: tcp/PORT). */
  readonly defaultAccess?: Settings['access'];
  readonly ask?: AskPassphrase;
  /** -v lines (without the `spa: ` prefix). */
  readonly log?: (line: string) => void;
}

export interface SealedKnock {
  readonly payload: Payload;
  readonly packet: Uint8Array;
}

export interface PreparedKnock {
  readonly destination: Destination;
  readonly username: string;
  readonly source: Address | 'any';
  readonly serverFingerprint: string;
  /** Fingerprint (or gpg key) that signs. */
  readonly signer: string;
  /** 'node:crypto' (the default key profile, protocol/native-seal.ts), 'openpgp.js' or 'gpg'. */
  readonly engine: 'node:crypto' | 'openpgp.js' | 'gpg';
  /** What each knock asks to open (with --rand-port: the one random external port, fixed per run). */
  readonly access: Settings['access'];
  /**
   * The server public key, to verify signed replies with (loaded on first use: the native and
   * gpg paths load no openpgp.js until a reply is awaited; gpg: exported from the gpg home).
   */
  serverKey(): Promise<openpgp.PublicKey | null>;
  seal(now?: Date): Promise<SealedKnock>;
  /** Sends one datagram; only when prepared with `willSend` or an automatic source. */
  send(packet: Uint8Array): Promise<void>;
  /** The next datagram from the server within `timeoutMs`, or null (needs the socket). */
  receive(timeoutMs: number): Promise<Uint8Array | null>;
  close(): void;
}

type Sealer = (payload: Payload, now: Date) => Promise<Uint8Array>;

interface KeyPlan {
  readonly username: string;
  readonly serverFingerprint: string;
  readonly signer: string;
  readonly sealer: Sealer;
  readonly engine: PreparedKnock['engine'];
  readonly serverKey: () => Promise<openpgp.PublicKey | null>;
}

/**
 * The keys of the default profile, sealed with node:crypto (protocol/native-seal.ts), so that
 * openpgp.js is never loaded; null when either key is of another shape, protected, expired or
 * anything else the native path leaves to openpgp.js (which then decides as before). Key files
 * (--gpg-sign/--gpg-recv FILE) always go to openpgp.js.
 */
async function nativeKeys(req: KnockRequest): Promise<KeyPlan | null> {
  const s = req.settings;
  if ([s.gpgSign, s.gpgRecv].some((q) => q !== undefined && keyFilePath(q) !== null)) return null;
  const [ownR, serverR] = await Promise.allSettled([
    findOwnRecord(req.home, s.gpgSign),
    findServerRecord(req.home, s.gpgRecv),
  ]);
  if (ownR.status === 'rejected') throw ownR.reason;
  if (serverR.status === 'rejected') throw serverR.reason;
  const own = ownR.value.rec;
  const server = serverR.value.rec;
  const { nativeSeal, parseNativeRecipient, parseNativeSigner } = await import('../protocol/native-seal.js');
  const now = new Date();
  const signer = parseNativeSigner(own.secretKey, now);
  const recipient = signer && parseNativeRecipient(server.publicKey, now);
  if (
    !signer ||
    !recipient ||
    signer.fingerprint !== own.fingerprint ||
    recipient.fingerprint !== server.fingerprint
  ) {
    return null;
  }
  const username = usernameFor(own, s.username);
  return {
    username,
    serverFingerprint: server.fingerprint,
    signer: own.fingerprint,
    engine: 'node:crypto',
    serverKey: async () => (await findServerKey(req.home, s.gpgRecv)).key as openpgp.PublicKey,
    sealer: async (payload, at) => {
      const r = () => new Uint8Array(randomBytes(32));
      return nativeSeal(encodePayload(payload), signer, recipient, at, {
        sessionKey: r(),
        ephemeral: r(),
        prefix: new Uint8Array(randomBytes(16)),
        salt: r(),
      });
    },
  };
}

/** `gate`: what must succeed before anyone is asked for a passphrase (destination, source). */
async function openpgpKeys(
  req: KnockRequest,
  pg: Promise<typeof openpgp>,
  gate: Promise<unknown>,
): Promise<KeyPlan> {
  const s = req.settings;
  // both lookups run at once; errors are reported own key first, whichever fails first
  const [ownR, serverR] = await Promise.allSettled([
    findOwnKey(req.home, s.gpgSign),
    findServerKey(req.home, s.gpgRecv),
  ]);
  if (ownR.status === 'rejected') throw ownR.reason;
  if (serverR.status === 'rejected') throw serverR.reason;
  const own = ownR.value;
  const server = serverR.value;
  const username = usernameFor(own, s.username);
  if (!own.key.isDecrypted()) await gate;
  const signingKey = await unlockKey(own.key, {
    passphraseFile: s.keyPassphraseFile,
    label: own.fingerprint,
    ...(req.ask ? { ask: req.ask } : {}),
  });
  await pg;
  const { seal } = await import('../protocol/envelope.js');
  return {
    username,
    serverFingerprint: server.fingerprint,
    signer: own.fingerprint,
    engine: 'openpgp.js',
    serverKey: async () => server.key,
    sealer: (payload, now) => seal(payload, { signingKey, serverKey: server.key, now }),
  };
}

async function gpgKeys(req: KnockRequest, home: string): Promise<KeyPlan> {
  const s = req.settings;
  const [{ gpgSeal }, { gpgServerKey, gpgSignerKey }] = await Promise.all([
    import('./gpg.js'),
    import('./gpg-keys.js'),
  ]);
  const opts: GpgOptions = { exe: s.gpgExe, home, passphraseFile: s.keyPassphraseFile };
  if (s.keyPassphraseFile !== undefined) {
    // gpg reads the file itself: check it first as any passphrase file (and that it is not empty)
    const { readPassphraseFile } = await import('../keyring/file-safety.js');
    await readPassphraseFile(s.keyPassphraseFile);
  }
  const [signerR, recipientR] = await Promise.allSettled([
    gpgSignerKey(opts, s.gpgSign),
    gpgServerKey(opts, s.gpgRecv),
  ]);
  if (signerR.status === 'rejected') throw signerR.reason;
  if (recipientR.status === 'rejected') throw recipientR.reason;
  const signer = signerR.value;
  const recipient = recipientR.value;
  let username = s.username ?? (await ownUsername(req.home, signer.fingerprint));
  if (username === undefined) {
    const { usernameFromUserId } = await import('../keyring/policy.js');
    username = usernameFromUserId(signer.userIds[0]) ?? '';
  }
  return {
    username: usernameFor({ username, fingerprint: signer.fingerprint }),
    serverFingerprint: recipient.fingerprint,
    signer: signer.fingerprint,
    engine: 'gpg',
    serverKey: async () => (await import('./gpg-reply-key.js')).gpgReplyKey(opts, recipient),
    sealer: (payload) => gpgSeal(opts, encodePayload(payload), recipient, signer.fingerprint),
  };
}

/** Everything but the packet itself. Throws ConfigError (USAGE, KEY_*, IO, ...) on misuse. */
export async function prepareKnock(req: KnockRequest): Promise<PreparedKnock> {
  const s = req.settings;
  if (s.host === undefined) {
    throw new ConfigError('USAGE', 'no server given', {
      hint: 'spa [options] HOST, or -n NAME with a stanza that has host = ...',
    });
  }
  const type = s.serverCmd !== null ? 'command' : 'access';
  const asked = s.access ?? req.defaultAccess;
  // --rand-port: -A gives the protocol; the external port is drawn once, so every retry (and
  // spa connect) uses the same one
  const access =
    s.randPort && asked !== undefined
      ? [
          {
            proto: asked[0]?.proto ?? 'tcp',
            port: randomInt(s.randPortRange.min, s.randPortRange.max + 1),
          } as const,
        ]
      : asked;
  if (s.forward && access !== undefined && access.length !== 1) {
    throw new ConfigError('USAGE', '-N: a forwarding request names one external port (one -A entry)');
  }
  if (type === 'access' && access === undefined) {
    throw new ConfigError('USAGE', 'say what to open: -A/--access is required', {
      hint: 'e.g. spa -A tcp/22 HOST, or --server-cmd CMD for a command request',
    });
  }

  const log = req.log;
  let socket: KnockSocket | null = null;
  const destP = resolveDestination(s.host, s.serverPort, s.family);
  const needSocket = req.willSend || s.source.kind === 'auto';
  const socketP = needSocket
    ? destP.then(async (d) => {
        socket = await KnockSocket.connect(d);
        return socket;
      })
    : null;
  const sourceP: Promise<Address | 'any'> = (async () => {
    switch (s.source.kind) {
      case 'ip':
        return s.source.address;
      case 'any':
        return 'any';
      case 'http': {
        const { resolvePublicAddress } = await import('./source.js');
        const a = await resolvePublicAddress(s.source.url);
        log?.(`source address from ${s.source.url.origin}: ${formatAddress(a)}`);
        return a;
      }
      case 'auto':
        return ((await socketP) as KnockSocket).localAddress();
    }
  })();
  const gate = Promise.all([destP, socketP, sourceP]);
  gate.catch(() => undefined);
  const keysP =
    s.gpgHomeDir === undefined
      ? nativeKeys(req).then((plan) => {
          if (plan) return plan;
          // openpgp.js: start loading it now, so its compile time overlaps the key file reads
          const pg = pgp();
          pg.catch(() => undefined);
          return openpgpKeys(req, pg, gate);
        })
      : gpgKeys(req, s.gpgHomeDir);

  const all = await Promise.allSettled([destP, socketP, sourceP, keysP]);
  const failed = all.find((r) => r.status === 'rejected');
  if (failed) {
    (socket as KnockSocket | null)?.close();
    // report in a stable order: destination, socket, source, keys
    throw (failed as PromiseRejectedResult).reason;
  }
  const destination = (all[0] as PromiseFulfilledResult<Destination>).value;
  const source = (all[2] as PromiseFulfilledResult<Address | 'any'>).value;
  const plan = (all[3] as PromiseFulfilledResult<KeyPlan>).value;
  const sock = socket as KnockSocket | null;

  return {
    destination,
    username: plan.username,
    source,
    serverFingerprint: plan.serverFingerprint,
    signer: plan.signer,
    engine: plan.engine,
    access,
    serverKey: plan.serverKey,
    async seal(now = new Date()) {
      const payload = makePayload({
        type,
        timestamp: Math.floor(now.getTime() / 1000),
        nonce: new Uint8Array(randomBytes(16)),
        serverFingerprint: plan.serverFingerprint,
        username: plan.username,
        source,
        access: type === 'access' ? (access ?? []) : [],
        timeoutSeconds: type === 'access' ? s.fwTimeout : 0,
        command: s.serverCmd,
        ...(s.retries !== null ? { reply: true } : {}),
        ...(s.forward ? { forward: { ...s.forward, randomPort: s.randPort } } : {}),
      });
      const packet = await plan.sealer(payload, now);
      if (packet.length > PACKET_MAX_BYTES) {
        throw new ConfigError(
          'LIMIT_EXCEEDED',
          `knock: ${packet.length} bytes, the server accepts at most ${PACKET_MAX_BYTES}`,
          {
            hint: 'use a shorter --server-cmd, fewer -A entries, or Curve25519 keys instead of RSA',
          },
        );
      }
      return { payload, packet };
    },
    async send(packet) {
      if (!sock) throw new ConfigError('USAGE', 'this knock was prepared without a socket (--test)');
      await sock.send(packet);
    },
    receive(timeoutMs) {
      if (!sock) return Promise.resolve(null);
      return sock.receive(timeoutMs);
    },
    close() {
      sock?.close();
    },
  };
}

/** Prepare and seal one knock. The caller sends it (`sendKnock`) or not (--test), then closes. */
export async function buildKnock(req: KnockRequest): Promise<{ prepared: PreparedKnock } & SealedKnock> {
  const prepared = await prepareKnock(req);
  try {
    const sealed = await prepared.seal();
    return { prepared, ...sealed };
  } catch (e) {
    prepared.close();
    throw e;
  }
}

/** Sends the packet and closes the socket. */
export async function sendKnock(k: { prepared: PreparedKnock; packet: Uint8Array }): Promise<void> {
  try {
    await k.prepared.send(k.packet);
  } finally {
    k.prepared.close();
  }
}
