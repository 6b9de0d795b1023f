/**
 * Loads the one-file client bundle (dist/client/spa.bundle.cjs) with its V8 code cache: see
 * cli.ts for why, and scripts/bundle-client.ts for how both files are made.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';

/** The files the build writes beside this one, and how the cache names its bundle. */
export const BUNDLE_FILE = 'spa.bundle.cjs';
export const CACHE_FILE = 'spa.bundle.cache';
/** The bundle's last line: `//# spa-build-id=<32 hex>`; the cache file starts with the same 32 hex. */
export const BUILD_ID_RE = /\/\/# spa-build-id=([0-9a-f]{32})\s*$/;
export const BUILD_ID_LENGTH = 32;

type Main = (argv: readonly string[]) => Promise<number>;

export interface LoadedBundle {
  readonly main: Main;
  /** The compiled script: the build asks it for a fresh code cache after a warm-up knock. */
  readonly script: Script;
  /** True when a cache was offered and V8 took it. */
  readonly cacheUsed: boolean;
}

function readOrNull(path: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Compiles and runs the bundle in `dir` (with its cache when it matches), or null if there is none. */
export function loadBundle(dir: string, opts: { useCache?: boolean } = {}): LoadedBundle | null {
  const file = join(dir, BUNDLE_FILE);
  // esbuild writes ASCII only (its default charset), so latin1 decodes it exactly and fastest
  const source = readOrNull(file)?.toString('latin1');
  if (source === undefined) return null;
  const id = BUILD_ID_RE.exec(source.slice(-80))?.[1];
  let cachedData: Buffer | undefined;
  if (id !== undefined && opts.useCache !== false) {
    const cache = readOrNull(join(dir, CACHE_FILE));
    if (cache && cache.length > BUILD_ID_LENGTH && cache.toString('latin1', 0, BUILD_ID_LENGTH) === id) {
      cachedData = cache.subarray(BUILD_ID_LENGTH);
    }
  }
  // the CommonJS wrapper, as node's own loader would add it
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    ...(cachedData ? { cachedData } : {}),
  });
  const mod: { exports: { main?: Main } } = { exports: {} };
  const fn = script.runInThisContext() as (...args: unknown[]) => void;
  fn.call(mod.exports, mod.exports, createRequire(file), mod, file, dir);
  const main = mod.exports.main;
  if (typeof main !== 'function') throw new Error(`${file} does not export main()`);
  return { main, script, cacheUsed: cachedData !== undefined && !script.cachedDataRejected };
}
