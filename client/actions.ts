/**
 * What `spa` and `spa connect` do once their flags are parsed (options.ts): load the settings,
 * prepare the knock (knock.ts), seal it, save the rc stanza if asked, then print it (--test) or
 * send it, wait for a signed reply with --retries, and for `connect` wait for the port and relay.
 */
import type { Readable, Writable } from 'node:stream';
import { printWarning, type Write } from '../cli/conventions.js';
import { formatAddress } from '../protocol/address.js';
import { displaySafe } from '../protocol/display.js';
import { formatForwardTarget } from '../protocol/forward.js';
import { describePayload, type Payload } from '../protocol/payload.js';
import type { Reply } from '../protocol/reply.js';
import { type KnockRequest, type PreparedKnock, prepareKnock } from './knock.js';
import { type CliOpts, loadSettings } from './options.js';
import type { AskPassphrase } from './passphrase.js';
import { type RcValues, saveStanza } from './rc.js';
import { DEFAULT_RETRIES, parseIntIn, REPLY_WAIT_MS, type Settings } from './settings.js';
import { hostPort } from './transport.js';

/** Where the program reads and writes; tests pass their own. */
export interface ClientIo {
  /** Data (--test output). */
  readonly out?: Write;
  /** Messages (-v, notices). */
  readonly err?: Write;
  /** spa connect's relay ends. */
  readonly stdin?: Readable;
  readonly stdout?: Writable;
  /** Passphrase prompt (default: the terminal). */
  readonly ask?: AskPassphrase;
}

function describeSource(src: Payload['source']): string {
  return src === 'any' ? 'any (the packet source)' : formatAddress(src);
}

interface RunContext {
  readonly opts: CliOpts;
  readonly io: ClientIo;
  readonly out: Write;
  readonly err: Write;
  readonly log: ((line: string) => void) | undefined;
  /** -B FILE: saves each knock of the run (client/save-packet.ts); undefined without -B. */
  readonly save: ((packet: Uint8Array) => Promise<void>) | undefined;
}

async function context(opts: CliOpts, io: ClientIo): Promise<RunContext> {
  const out = io.out ?? ((s: string) => void process.stdout.write(s));
  const err = io.err ?? ((s: string) => void process.stderr.write(s));
  // -v lines quote user ids, usernames and commands: escaped so they cannot act on the terminal
  const log = (line: string) => err(`spa: ${displaySafe(line, { backslash: false })}\n`);
  const save =
    opts.savePacket === undefined
      ? undefined
      : (await import('./save-packet.js')).packetSaver(opts.savePacket);
  return { opts, io, out, err, log: opts.verbose ? log : undefined, save };
}

async function prepare(
  ctx: RunContext,
  settings: Settings,
  home: string,
  defaultAccess?: Settings['access'],
): Promise<PreparedKnock> {
  const req: KnockRequest = {
    settings,
    home,
    willSend: !ctx.opts.test,
    ...(defaultAccess ? { defaultAccess } : {}),
    ...(ctx.io.ask ? { ask: ctx.io.ask } : {}),
    ...(ctx.log ? { log: ctx.log } : {}),
  };
  const p = await prepareKnock(req);
  if (settings.source.kind === 'http' && settings.source.url.protocol === 'http:' && p.source !== 'any') {
    printWarning(
      `the address to open for (${formatAddress(p.source)}) came over plain http from ${settings.source.url.host}: ` +
        'anyone on the path could have chosen it (--insecure-resolve)',
      ctx.err,
    );
  }
  ctx.log?.(
    `server ${p.destination.host} = ${hostPort(p.destination.address, p.destination.port)} (udp${p.destination.family}); ` +
      `server key ${p.serverFingerprint}`,
  );
  ctx.log?.(
    `signing key ${p.signer} (${p.engine}), username ${p.username}, source ${describeSource(p.source)}`,
  );
  return p;
}

/** Seal, save the stanza if asked, then print (--test) or send. Returns the sealed knock. */
async function sealAndSend(
  ctx: RunContext,
  p: PreparedKnock,
  save: { rcFile: string; values: RcValues } | null,
  retries: number | null = null,
): Promise<Reply | null> {
  const { payload, packet } = await p.seal();
  await ctx.save?.(packet);
  if (save && ctx.opts.namedConfig !== undefined) {
    await saveStanza(save.rcFile, ctx.opts.namedConfig, save.values);
    ctx.err(`spa: saved stanza [${ctx.opts.namedConfig}] in ${save.rcFile}\n`);
  }
  if (ctx.opts.test) {
    ctx.out(`${JSON.stringify(describePayload(payload))}\npacket bytes: ${packet.length}\n`);
    return null;
  }
  ctx.log?.(`payload ${JSON.stringify(describePayload(payload))}`);
  if (retries !== null) {
    // the first attempt sends this packet; each retry seals a fresh one (new nonce)
    const { knockUntilReply, grantedLine } = await import('./await-reply.js');
    const g = await knockUntilReply(p, {
      first: { payload, packet },
      ...(ctx.save ? { beforeSend: ctx.save } : {}),
      retries,
      waitMs: REPLY_WAIT_MS,
      ...(ctx.log ? { log: ctx.log } : {}),
    });
    ctx.err(`spa: ${grantedLine(g.reply)}\n`);
    ctx.log?.(`reply after knock ${g.knocks}, ${g.latencyMs.toFixed(1)} ms after it was sent`);
    return g.reply;
  }
  await p.send(packet);
  ctx.log?.(`sent ${packet.length} bytes to ${hostPort(p.destination.address, p.destination.port)}`);
  if (p.access && payload.forward) {
    ctx.err(
      `spa: knock sent: ${p.access.map((a) => `${a.proto}/${a.port}`).join(',')} -> ${formatForwardTarget(payload.forward)}\n`,
    );
  }
  return null;
}

export async function knockAction(host: string | undefined, opts: CliOpts, io: ClientIo): Promise<void> {
  const ctx = await context(opts, io);
  const { settings, save, rcFile, home } = await loadSettings(opts, host);
  const p = await prepare(ctx, settings, home);
  try {
    await sealAndSend(ctx, p, opts.saveRcStanza ? { rcFile, values: save } : null, settings.retries);
  } finally {
    p.close();
  }
}

export async function connectAction(
  host: string,
  portText: string,
  opts: CliOpts,
  io: ClientIo,
): Promise<void> {
  const ctx = await context(opts, io);
  const port = parseIntIn(portText, 'PORT', 1, 65535);
  const loaded = await loadSettings(opts, host);
  const { save, rcFile, home } = loaded;
  // a random external port is confirmed by the signed reply before connecting to it
  const settings: Settings = {
    ...loaded.settings,
    retries: loaded.settings.retries ?? (loaded.settings.randPort ? DEFAULT_RETRIES : null),
  };
  const p = await prepare(ctx, settings, home, [{ proto: 'tcp', port }]);
  let sock: import('node:net').Socket;
  try {
    const reply = await sealAndSend(
      ctx,
      p,
      opts.saveRcStanza ? { rcFile, values: save } : null,
      settings.retries,
    );
    if (opts.test) return;
    const target = reply?.granted[0]?.port ?? (settings.forward ? p.access?.[0]?.port : undefined) ?? port;
    const { waitForPort } = await import('./connect.js');
    sock = await waitForPort({
      address: p.destination.address,
      port: target,
      timeoutMs: settings.connectTimeout * 1000,
      reknock: async () => {
        const again = await p.seal();
        await ctx.save?.(again.packet);
        await p.send(again.packet);
        ctx.log?.(`sent ${again.packet.length} bytes again`);
      },
      ...(ctx.log ? { log: ctx.log } : {}),
    });
  } finally {
    p.close();
  }
  const { relay } = await import('./connect.js');
  await relay(sock, io.stdin ?? process.stdin, io.stdout ?? process.stdout);
}
