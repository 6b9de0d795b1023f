/**
 * `spa-keys add`: enroll a user's public key. Flags given are checked first; on a terminal, the
 * key is asked for when --key is missing, its summary is shown and its fingerprint confirmed, and
 * the policy flags that are missing are asked (add-wizard.ts) before anything is stored. Without a
 * terminal every required flag must be given.
 */
import type { Command } from 'commander';
import { ConfigError } from '../protocol/errors.js';
import { formatMessage } from '../cli/conventions.js';
import { askPolicy, type GivenPolicy } from './add-wizard.js';
import { type GlobalOpts, readFwknopHmacKey, readKeyBytes, type SpaKeysIo } from './cmd-io.js';
import { keySummary } from './format.js';
import type { Prompter } from './prompts.js';

export interface AddFlags {
  user?: string;
  key?: string;
  source?: string;
  open?: string;
  timeout?: string;
  maxTimeout?: string;
  cmdRegex?: string;
  cmdUser?: string;
  cmdTimeout?: string;
  expires?: string;
  forward?: string;
  reply?: boolean;
  yes?: boolean;
  requireSource: boolean;
  fwknop?: boolean;
  fwknopHmacKey?: string;
  fwknopHmacKeyBase64?: string;
}

const PUBLIC_END = /-----END PGP (PUBLIC|PRIVATE) KEY BLOCK-----/;

export async function addAction(io: SpaKeysIo, flags: AddFlags, cmd: Command): Promise<void> {
  const lib = await import('./allowlist.js');
  const pol = await import('./policy.js');
  const insp = await import('./inspect.js');
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const stateDir = lib.resolveStateDir(g.stateDir, io.env);
  const now = io.now();
  const canAsk = io.isTTY && flags.key !== '-';

  // flags given are checked before anything else happens
  const given: GivenPolicy = {
    username: flags.user !== undefined ? pol.parseUsername(flags.user) : undefined,
    sources: flags.source !== undefined ? pol.parseSources(flags.source) : undefined,
    openPorts: flags.open !== undefined ? pol.parseOpenPorts(flags.open) : undefined,
    defaultTimeout: flags.timeout !== undefined ? pol.parseTimeout(flags.timeout) : undefined,
    maxTimeout:
      flags.maxTimeout !== undefined ? pol.parseTimeout(flags.maxTimeout, '--max-timeout') : undefined,
    cmdRegex: flags.cmdRegex !== undefined ? pol.parseCommandRegex(flags.cmdRegex) : undefined,
    cmdUser: flags.cmdUser !== undefined ? pol.parseRunAs(flags.cmdUser) : undefined,
    cmdTimeout: flags.cmdTimeout !== undefined ? pol.parseCmdTimeout(flags.cmdTimeout) : undefined,
    expiresAt: flags.expires !== undefined ? pol.parseExpiry(flags.expires, now) : undefined,
    forward: flags.forward !== undefined ? pol.parseForward(flags.forward) : undefined,
    reply: flags.reply === true ? true : undefined,
    requireSource: cmd.getOptionValueSource('requireSource') === 'cli' ? flags.requireSource : undefined,
  };
  if (flags.fwknopHmacKey !== undefined && flags.fwknopHmacKeyBase64 !== undefined) {
    throw new ConfigError('USAGE', '--fwknop-hmac-key and --fwknop-hmac-key-base64: give one of them');
  }
  const hmacFlag = flags.fwknopHmacKey !== undefined ? '--fwknop-hmac-key' : '--fwknop-hmac-key-base64';
  const hmacFile = flags.fwknopHmacKey ?? flags.fwknopHmacKeyBase64;
  if (hmacFile !== undefined && flags.fwknop !== true) {
    throw new ConfigError('USAGE', `${hmacFlag} needs --fwknop`, {
      hint: 'the HMAC key is for knocks from the fwknop client, which --fwknop allows',
    });
  }
  const givenHmac =
    hmacFile !== undefined
      ? await readFwknopHmacKey(hmacFile, flags.fwknopHmacKeyBase64 !== undefined, hmacFlag)
      : undefined;
  const missing: string[] = [];
  if (given.username === undefined) missing.push('--user');
  if (flags.key === undefined) missing.push('--key');
  if (given.openPorts === undefined) missing.push('--open');
  if (given.cmdRegex !== undefined && given.cmdUser === undefined) missing.push('--cmd-user');
  if (given.cmdRegex === undefined && (given.cmdUser !== undefined || given.cmdTimeout !== undefined)) {
    missing.push('--cmd-regex');
  }
  if (missing.length > 0 && !canAsk) {
    throw new ConfigError(
      'USAGE',
      `missing required flag${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`,
      {
        hint:
          flags.key === '-' && io.isTTY
            ? 'with --key - stdin holds the key, so nothing can be asked: give every flag'
            : "give them, or run 'spa-keys add' on a terminal to be asked",
      },
    );
  }
  if (given.defaultTimeout !== undefined && given.maxTimeout !== undefined) {
    pol.checkTimeouts(given.defaultTimeout, given.maxTimeout);
  }
  const askAll = canAsk && missing.length > 0;
  // an uninitialised or corrupt state dir is reported before any question
  const before = await lib.readAllowlistFile(stateDir);

  const { minimalKey } = await import('./minimize.js');
  const load = async (text: string | Uint8Array, what: string) => {
    // what is stored is the minimal key: a key bloated in transit must not reach the daemon
    const key = await minimalKey(await insp.parseKey(text), now, what);
    const info = await insp.describeKey(key, now);
    insp.assertPublic(info, what);
    insp.checkUsable(info, 'client');
    const already = before.keys[info.fingerprint];
    if (already) throw lib.existsError(already);
    return { key, info };
  };

  let p: Prompter | undefined;
  const prompter = async () => {
    p ??= await io.prompter();
    return p;
  };

  let loaded: Awaited<ReturnType<typeof load>>;
  if (flags.key !== undefined) {
    loaded = await load(
      await readKeyBytes(flags.key, io),
      flags.key === '-' ? 'the key on stdin' : flags.key,
    );
  } else {
    const q = await prompter();
    const byFile = new Map<string, Awaited<ReturnType<typeof load>>>();
    for (;;) {
      const ans = (
        await q.input({
          message: "User's public key: path of an armored file, or - to paste it",
          validate: async (v) => {
            const t = v.trim();
            if (t === '') return 'required: a file path, or - to paste the key';
            if (t === '-') return true;
            try {
              byFile.set(t, await load(await readKeyBytes(t, io), t));
              return true;
            } catch (e) {
              return formatMessage((e as Error).message);
            }
          },
        })
      ).trim();
      if (ans !== '-') {
        const l = byFile.get(ans);
        if (l) {
          loaded = l;
          break;
        }
        continue;
      }
      const text = await q.readBlock({
        message: 'Paste the armored public key (it ends with -----END PGP PUBLIC KEY BLOCK-----):',
        end: PUBLIC_END,
      });
      try {
        loaded = await load(text, 'the pasted key');
        break;
      } catch (e) {
        q.say(`spa: error: ${formatMessage((e as Error).message)}`);
      }
    }
  }
  const { key, info } = loaded;

  io.stderr(`key to enroll:\n${keySummary(info, insp.algorithmSummary(info))}`);
  if (!flags.yes && io.isTTY) {
    const ok = await (
      await prompter()
    ).confirm({
      message: 'Does this fingerprint match the one the user gave you (check it out of band)?',
      default: false,
    });
    if (!ok) {
      throw new ConfigError('NOT_CONFIRMED', 'fingerprint not confirmed; nothing was stored', {
        hint: 'compare the fingerprint with the key owner by another channel, then run add again',
      });
    }
  }

  const policy = await askPolicy({
    given,
    givenHmac,
    fwknop: flags.fwknop === true,
    askAll,
    info,
    now,
    prompter,
    stderr: io.stderr,
  });

  const pub = key.isPrivate() ? key.toPublic() : key;
  const record = lib.buildRecord(info, pub.armor(), policy, now);
  await lib.addRecord(stateDir, record);
  io.stdout(`enrolled ${record.username} ${record.fingerprint}\n`);
  const others = Object.values(before.keys).filter((r) => r.username === record.username).length;
  if (others > 0) io.stderr(`spa-keys: ${record.username} now has ${others + 1} enrolled keys\n`);
}
