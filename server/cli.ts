#!/usr/bin/env node
/** The `spad` binary: see program.ts. */
import { runCli } from '../cli/conventions.js';
import { buildProgram } from './program.js';

process.exitCode = await runCli(buildProgram(), process.argv.slice(2));
