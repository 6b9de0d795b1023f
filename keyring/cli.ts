#!/usr/bin/env node
/** The `spa-keys` binary: the real process wired to the command tree in program.ts. */
import { runCli } from '../cli/conventions.js';
import { createProgram } from './program.js';

process.exitCode = await runCli(createProgram(), process.argv.slice(2));
