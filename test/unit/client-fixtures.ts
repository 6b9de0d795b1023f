/**
 * Shared by the client tests: a throwaway client home with keys in its keystore, the `spa`
 * program run in-process (captured stdout/stderr, exit code), and a UDP listener on 127.0.0.1 that
 * receives real knocks so a test can check them with protocol's `open()`, as the server would.
 */
import { randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PublicKey } from 'openpgp';
import { buildProgram, type ClientIo } from '../../client/program.js';
import { runCli } from '../../cli/conventions.js';
import { importKey } from '../../keyring/keystore.js';
import { type Opened, open, type ServerIdentity } from '../../protocol/envelope.js';
import { DEFAULT_MAX_SKEW_SECONDS } from '../../protocol/limits.js';
import type { Payload } from '../../protocol/payload.js';
import { signReply } from '../../protocol/reply.js';
import { signerMap, type TestKey, testKey, testServer } from '../helpers/keys.js';

export interface SpaRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs `spa ARGV` in-process. */
export async function spa(argv: readonly string[], io: Omit<ClientIo, 'out' | 'err'> = {}): Promise<SpaRun> {
  let out = '';
  let err = '';
  const w = {
    out: (s: string) => {
      out += s;
    },
    err: (s: string) => {
      err += s;
    },
  };
  const code = await runCli(buildProgram({ ...io, ...w }), argv, { stdout: w.out, stderr: w.err });
  return { code, out, err };
}

/** The JSON payload line of `spa --test` output, and the packet size line. */
export function parseTestOutput(out: string): { payload: Record<string, unknown>; bytes: number } {
  const lines = out.trimEnd().split('\n');
  const m = /^packet bytes: (\d+)$/.exec(lines[1] ?? '');
  if (lines.length !== 2 || !m) throw new Error(`unexpected --test output: ${out}`);
  return { payload: JSON.parse(lines[0] ?? '') as Record<string, unknown>, bytes: Number(m[1]) };
}

export interface Home {
  readonly root: string;
  readonly home: string;
  cleanup(): Promise<void>;
}

export async function tempDir(prefix = 'spa-client-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/**
 * A client home holding own keys (armored private, with usernames) and server public keys (with
 * optional names), imported with keyring's importKey as `spa-keys import` does.
 */
export async function makeHome(
  own: ReadonlyArray<{ key: TestKey | string; username: string }>,
  servers: ReadonlyArray<{ key: TestKey; name?: string }>,
): Promise<Home> {
  const root = await tempDir();
  const home = join(root, 'home');
  for (const o of own) {
    await importKey(home, typeof o.key === 'string' ? o.key : o.key.armoredPrivate, { username: o.username });
  }
  for (const s of servers) await importKey(home, s.key.armoredPublic, s.name ? { name: s.name } : {});
  return { root, home, cleanup: () => rm(root, { recursive: true, force: true }) };
}

export interface Datagram {
  readonly msg: Buffer;
  readonly rinfo: RemoteInfo;
}

export interface Listener {
  readonly port: number;
  readonly received: Datagram[];
  /** The next datagram not yet taken, waiting up to `timeoutMs`. */
  next(timeoutMs?: number): Promise<Datagram>;
  /**
   * Resolves once every datagram sent to this listener before the call is in `received`: sends
   * a marker of its own and waits for it (not recorded). Loopback queues a datagram on the
   * receiving socket before the sender's send returns, so whatever was sent earlier is read
   * first. What a test uses to say "nothing was sent" instead of sleeping.
   */
  settled(timeoutMs?: number): Promise<void>;
  close(): void;
}

/** A UDP socket bound to an ephemeral port on `address` that records what arrives. */
export async function udpListener(address = '127.0.0.1'): Promise<Listener> {
  const sock: Socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  const received: Datagram[] = [];
  let taken = 0;
  const waiters: (() => void)[] = [];
  const markers = new Map<string, () => void>();
  sock.on('message', (msg, rinfo) => {
    const marker = markers.get(msg.toString('latin1'));
    if (marker) return marker();
    received.push({ msg, rinfo });
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve) => sock.bind(0, address, () => resolve()));
  return {
    port: sock.address().port,
    received,
    async next(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (taken >= received.length) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error('no datagram arrived');
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return received[taken++] as Datagram;
    },
    async settled(timeoutMs = 5000) {
      const marker = `spa-test-marker ${randomUUID()}`;
      const from = createSocket(address.includes(':') ? 'udp6' : 'udp4');
      try {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error('the listener never read its marker')), timeoutMs);
          markers.set(marker, () => {
            clearTimeout(t);
            resolve();
          });
          from.send(marker, sock.address().port, address, (err) => err && reject(err));
        });
      } finally {
        markers.delete(marker);
        from.close();
      }
    },
    close() {
      sock.close();
    },
  };
}

export interface Keys {
  readonly alice: TestKey;
  readonly bob: TestKey;
  readonly server: TestKey;
  readonly other: TestKey;
  readonly identity: ServerIdentity;
}

/** The test keys: two clients, the server, and a second server key. */
export async function keys(): Promise<Keys> {
  const [alice, bob, server, other] = await Promise.all([
    testKey('alice'),
    testKey('bob'),
    testKey('server'),
    testKey('other-server'),
  ]);
  return { alice, bob, server, other, identity: await testServer(server) };
}

/** Opens a received knock as the server would, with the given enrolled client keys. */
export function openKnock(
  bytes: Uint8Array,
  identity: ServerIdentity,
  enrolled: ReadonlyArray<TestKey | PublicKey>,
): Promise<Opened> {
  return open(bytes, {
    server: identity,
    lookupSigner: signerMap(enrolled),
    now: new Date(),
    maxSkewSeconds: DEFAULT_MAX_SKEW_SECONDS,
  });
}

export interface KnockRig {
  K: Keys;
  H: Home;
  L: Listener;
}

/**
 * Registers before/after hooks in the current scope: the shared test keys, a client home with
 * alice's key and the test server key (named `serverName`; unnamed when null), and a UDP
 * listener on 127.0.0.1 standing in for spad. Everything is removed after the scope's tests.
 */
export function useKnockRig(serverName: string | null = 'gw'): KnockRig {
  const rig = {} as KnockRig;
  before(async () => {
    rig.K = await keys();
    rig.H = await makeHome(
      [{ key: rig.K.alice, username: 'alice' }],
      [{ key: rig.K.server, ...(serverName === null ? {} : { name: serverName }) }],
    );
    rig.L = await udpListener();
  });
  after(async () => {
    rig.L?.close();
    await rig.H?.cleanup();
  });
  return rig;
}

/** The reply spad would sign for knock `p` (SPEC.md §12), granted for 30 s, signed by `key`. */
export function signedReply(p: Payload, key: TestKey, over: { port?: number } = {}): Promise<Uint8Array> {
  return signReply(
    {
      issued: Math.floor(Date.now() / 1000),
      nonce: p.nonce,
      serverFingerprint: key.fingerprint,
      timeoutSeconds: 30,
      granted: [{ proto: p.access[0]?.proto ?? 'tcp', port: over.port ?? p.access[0]?.port ?? 22 }],
      forward: p.forward ? { host: p.forward.host, port: p.forward.port } : null,
    },
    key.privateKey,
    new Date(),
  );
}
