/**
 * `spa`: the client command line (README.md "Client setup", docs/man/spa.1.md): the commander
 * tree, wired to the flags (options.ts) and the actions (actions.ts, a thin layer over knock.ts).
 *
 *   spa [options] HOST                 one knock, then exit 0
 *   spa connect [options] HOST PORT    knock, wait for HOST:PORT, relay stdin/stdout (ssh ProxyCommand)
 *
 * Flags follow fwknop's where they exist (-A, -D, -a, -s, -R, -p, -U, -n, --save-rc-stanza,
 * --server-cmd, --fw-timeout, --test, -v). Settings come from the rc file's [default] stanza,
 * then the `-n NAME` stanza, then the flags (options.ts, settings.ts). Built with `buildProgram()`
 * and run by cli/conventions.ts `runCli`, which prints `spa: error: ...` lines and picks the exit
 * code.
 */
import { Command, Option } from 'commander';
import { type ClientIo, connectAction, knockAction } from './actions.js';
import { addKnockOptions, type CliOpts, EPILOG } from './options.js';

export type { ClientIo } from './actions.js';

/** The `spa` program. `io` replaces the process's streams (tests). */
export function buildProgram(io: ClientIo = {}): Command {
  const program = addKnockOptions(
    new Command('spa')
      .description('Single Packet Authorization client: one signed, encrypted UDP knock opens a port for you')
      .usage('[options] HOST')
      .argument('[HOST]', 'the server: name or IPv4/IPv6 address (or -D HOST, or host = in the -n stanza)')
      .helpCommand(false)
      .enablePositionalOptions(),
  )
    .addHelpText('after', EPILOG)
    .action(async (host: string | undefined, opts: CliOpts) => knockAction(host, opts, io));

  const connect = addKnockOptions(
    new Command('connect')
      .description('knock, wait until HOST:PORT answers, then relay stdin/stdout (ssh ProxyCommand)')
      .usage("[options] HOST PORT   e.g. ssh -o ProxyCommand='spa connect -n NAME %h %p' host")
      .argument('<HOST>', 'the server')
      .argument(
        '<PORT>',
        'TCP port to connect to once open; the knock asks for tcp/PORT unless -A says otherwise',
      ),
  )
    .addOption(
      new Option(
        '--connect-timeout <seconds>',
        'give up when the port has not answered after this long (default 5)',
      ),
    )
    .action(async (host: string, port: string, opts: CliOpts, cmd: Command) => {
      const parentOpts = Object.fromEntries(
        Object.entries(cmd.parent?.opts() ?? {}).filter(([, v]) => v !== undefined),
      ) as CliOpts;
      await connectAction(host, port, { ...parentOpts, ...opts }, io);
    });
  program.addCommand(connect);
  return program;
}
