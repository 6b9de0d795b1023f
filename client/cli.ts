#!/usr/bin/env node
/**
 * The `spa` binary. A knock is one short process, so start-up is most of its time: this file only
 * loads the program. The build (scripts/bundle-client.ts, run by `npm run build`, `npm test` and
 * `npm pack`) puts the whole client in one CommonJS file beside this one, spa.bundle.cjs, plus a
 * V8 code cache for it, spa.bundle.cache, made by running a knock once at build time. Compiling
 * the bundle from that cache skips parsing and compiling what a knock runs (openpgp.js included).
 * The cache is used only when it names the same build as the bundle (a random id in both) and
 * V8 accepts it (same V8 version and flags); otherwise the bundle is compiled from source, which
 * is slower and otherwise the same. Without a bundle (a plain `tsc` build) the program is
 * imported from main.js.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBundle } from './load-bundle.js';

const bundle = loadBundle(dirname(fileURLToPath(import.meta.url)));
const main = bundle ? bundle.main : (await import('./main.js')).main;
process.exitCode = await main(process.argv.slice(2));
