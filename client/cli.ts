#!/usr/bin/env node
/** The `spa` binary: see program.ts. Kept tiny: everything else is imported on demand. */
import { EXIT, printError, runCli } from '../keyring/cli-util.js';
import { buildProgram } from './program.js';

runCli(buildProgram(), process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    printError(err);
    process.exitCode = EXIT.ERROR;
  },
);
