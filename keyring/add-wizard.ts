/**
 * The questions of `spa-keys add` (the wizard): the enrollment policy, field by field. A flag
 * that was given is taken as it is. When a required flag is missing and a person can answer,
 * every field not given is asked, offering the default; otherwise the defaults apply. cmd-add.ts
 * checks the flags and the key before, and stores the record after.
 */
import { readFile } from 'node:fs/promises';
import { printWarning, type Write } from '../cli/conventions.js';
import type { NewRecordPolicy } from './allowlist.js';
import { readFwknopHmacKey } from './cmd-io.js';
import type { KeyInfo } from './inspect.js';
import type { Prompter } from './prompts.js';
import type { KeyRecord } from './schema.js';

/** The policy flags given to `add`, parsed; undefined when not given. */
export interface GivenPolicy {
  readonly username: string | undefined;
  readonly sources: 'any' | string[] | undefined;
  readonly openPorts: string[] | undefined;
  readonly defaultTimeout: number | undefined;
  readonly maxTimeout: number | undefined;
  readonly cmdRegex: string | undefined;
  readonly cmdUser: string | undefined;
  readonly cmdTimeout: number | undefined;
  readonly expiresAt: string | null | undefined;
  readonly forward: string[] | undefined;
  readonly reply: true | undefined;
  readonly requireSource: boolean | undefined;
}

export interface WizardContext {
  readonly given: GivenPolicy;
  /** The fwknop HMAC key read from --fwknop-hmac-key(-base64). */
  readonly givenHmac: string | undefined;
  /** --fwknop was given. */
  readonly fwknop: boolean;
  /** Ask for every field not given (a required flag was missing and a person can answer). */
  readonly askAll: boolean;
  /** The key being enrolled (its user id suggests the username). */
  readonly info: KeyInfo;
  readonly now: Date;
  readonly prompter: () => Promise<Prompter>;
  readonly stderr: Write;
}

/** Best effort: does a unix account exist here (for a warning only)? */
async function unixUserExists(name: string): Promise<boolean | null> {
  try {
    const passwd = await readFile('/etc/passwd', 'utf8');
    return passwd.split('\n').some((l) => l.startsWith(`${name}:`));
  } catch {
    return null;
  }
}

/** The enrollment policy: from the flags given, the answers, and the defaults. */
export async function askPolicy(ctx: WizardContext): Promise<NewRecordPolicy> {
  const pol = await import('./policy.js');
  const { given, givenHmac, askAll, info, now, prompter } = ctx;
  const ask = async (message: string, def: string | undefined, parse: (t: string) => unknown) => {
    const q = await prompter();
    return (
      await q.input({
        message,
        ...(def !== undefined ? { default: def } : {}),
        validate: pol.asValidator(parse),
      })
    ).trim();
  };

  const username =
    given.username ??
    pol.parseUsername(
      await ask('Username for this key', pol.usernameFromUserId(info.userIds[0]) ?? undefined, (t) =>
        pol.parseUsername(t),
      ),
    );
  const sources =
    given.sources ??
    (askAll
      ? pol.parseSources(
          await ask('Source addresses allowed to knock (CIDR list, or any)', 'any', (t) =>
            pol.parseSources(t),
          ),
        )
      : 'any');
  const openPorts =
    given.openPorts ??
    pol.parseOpenPorts(
      await ask('Ports to open (e.g. tcp/22,udp/53)', 'tcp/22', (t) => pol.parseOpenPorts(t)),
    );
  const requireSourceAddress =
    given.requireSource ??
    (askAll
      ? await (
          await prompter()
        ).confirm({
          message: "Must the knock name the packet's own source address? (answer no for users behind NAT)",
          default: true,
        })
      : true);
  const defaultTimeout =
    given.defaultTimeout ??
    (askAll
      ? pol.parseTimeout(
          await ask('Default firewall timeout, seconds', String(pol.DEFAULT_TIMEOUT), (t) =>
            pol.parseTimeout(t),
          ),
        )
      : pol.DEFAULT_TIMEOUT);
  const maxTimeout =
    given.maxTimeout ??
    (askAll
      ? pol.parseTimeout(
          await ask(
            'Longest timeout this key may ask for, seconds',
            String(Math.max(pol.DEFAULT_MAX_TIMEOUT, defaultTimeout)),
            (t) => pol.checkTimeouts(defaultTimeout, pol.parseTimeout(t, '--max-timeout')),
          ),
          '--max-timeout',
        )
      : pol.DEFAULT_MAX_TIMEOUT);
  pol.checkTimeouts(defaultTimeout, maxTimeout);

  let command: KeyRecord['command'] = null;
  let wantCommand = given.cmdRegex !== undefined || given.cmdUser !== undefined;
  if (!wantCommand && askAll) {
    wantCommand = await (
      await prompter()
    ).confirm({
      message: 'Allow this key to request a server command?',
      default: false,
    });
  }
  if (wantCommand) {
    const regex =
      given.cmdRegex ??
      pol.parseCommandRegex(
        await ask('Command regex (matched against the whole command)', undefined, (t) =>
          pol.parseCommandRegex(t),
        ),
      );
    for (const w of pol.commandRegexWarnings(regex)) printWarning(w, ctx.stderr);
    const runAs =
      given.cmdUser ??
      pol.parseRunAs(await ask('Run the command as unix user', undefined, (t) => pol.parseRunAs(t)));
    if (runAs === 'root') {
      printWarning(
        '--cmd-user root: every command this regex allows will run with full root privileges; prefer an unprivileged user',
        ctx.stderr,
      );
    }
    if ((await unixUserExists(runAs)) === false) {
      printWarning(
        `--cmd-user ${runAs}: no such user on this host; commands will fail until it exists`,
        ctx.stderr,
      );
    }
    const timeoutSeconds =
      given.cmdTimeout ??
      (askAll
        ? pol.parseCmdTimeout(
            await ask('Command time limit, seconds', String(pol.DEFAULT_CMD_TIMEOUT), (t) =>
              pol.parseCmdTimeout(t),
            ),
          )
        : pol.DEFAULT_CMD_TIMEOUT);
    command = { regex, runAs, timeoutSeconds, openPorts: [] };
  }
  let fwknop: KeyRecord['fwknop'];
  let wantFwknop = ctx.fwknop;
  if (!wantFwknop && askAll) {
    wantFwknop = await (
      await prompter()
    ).confirm({
      message: 'Also accept knocks from the unmodified fwknop client (GPG mode) for this key?',
      default: false,
    });
  }
  if (wantFwknop) {
    let hmacKey = givenHmac ?? null;
    if (givenHmac === undefined && askAll) {
      const ans = await ask(
        'fwknop HMAC key file (its HMAC_KEY_BASE64 line, as fwknop --key-gen prints it; empty for none)',
        '',
        () => true,
      );
      if (ans !== '') hmacKey = await readFwknopHmacKey(ans, true, 'fwknop HMAC key file');
    }
    fwknop = { hmacKey, requireUsername: null };
    if (hmacKey === null) {
      printWarning(
        'fwknop knocks without an HMAC reach decryption from any source; an HMAC key (--fwknop-hmac-key-base64) lets spad drop them before',
        ctx.stderr,
      );
    }
  }

  const expiresAt =
    given.expiresAt !== undefined
      ? given.expiresAt
      : askAll
        ? pol.parseExpiry(
            await ask('Enrollment expires on (YYYY-MM-DD, or never)', 'never', (t) =>
              pol.parseExpiry(t, now),
            ),
            now,
          )
        : null;

  let forward = given.forward;
  if (forward === undefined && askAll) {
    const text = await ask(
      'Internal hosts this key may be forwarded to (host:port list, local:port, or none)',
      'none',
      (t) => (t.trim().toLowerCase() === 'none' ? [] : pol.parseForward(t)),
    );
    forward = text.toLowerCase() === 'none' ? [] : pol.parseForward(text);
  }
  const reply =
    given.reply ??
    (askAll
      ? await (
          await prompter()
        ).confirm({
          message: 'May this key ask for a signed "door is open" reply?',
          default: false,
        })
      : false);

  return {
    username,
    sources,
    openPorts,
    requireSourceAddress,
    defaultTimeout,
    maxTimeout,
    expiresAt,
    command,
    ...(fwknop ? { fwknop } : {}),
    ...(forward && forward.length > 0 ? { forward } : {}),
    ...(reply ? { reply } : {}),
  };
}
