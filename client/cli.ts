#!/usr/bin/env node
/** The `spa` binary: see program.ts. Kept tiny: everything else is imported on demand. */
import { runCli } from '../keyring/cli-util.js';
import { buildProgram } from './program.js';

process.exitCode = await runCli(buildProgram(), process.argv.slice(2));
