/**
 * The `spa` program as one function: what the bin runs, either from the one-file bundle
 * (dist/client/spa.bundle.cjs, built from this file by scripts/bundle-client.ts) or, when no
 * bundle was built, from the tsc output (cli.ts decides).
 */
import { runCli } from '../cli/conventions.js';
import { buildProgram } from './program.js';

/** Runs `spa` with these arguments (without node and the script); resolves to the exit code. */
export function main(argv: readonly string[]): Promise<number> {
  return runCli(buildProgram(), argv);
}
