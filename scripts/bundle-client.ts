/**
 * Builds the fast start of the `spa` binary (client/cli.ts says why): after tsc,
 *   1. esbuild bundles dist/client/main.js and everything it imports (commander, inquirer's
 *      prompt, ...) into one CommonJS file, dist/client/spa.bundle.cjs, whose last
 *      line names a fresh random build id. openpgp.js and zod stay outside, required from
 *      node_modules when used: a knock with default keys needs neither (protocol/native-seal.ts
 *      seals it; zod is the keystore's full validator, reached only for an odd keys.json);
 *   2. a child process loads that bundle as the bin does (client/load-bundle.ts), runs one
 *      `--test` knock and one real knock to a UDP socket on 127.0.0.1 from a throwaway home,
 *      then writes V8's code cache for the bundle, which then holds every function those knocks
 *      compiled, to dist/client/spa.bundle.cache (the build id, then the cache bytes).
 * Both files are written to a temporary name and renamed; a failing step fails the build.
 *
 * Usage: node dist/scripts/bundle-client.js          (npm run build, scripts/setup.sh, prepack.sh)
 *        node dist/scripts/bundle-client.js --warm   (the child of step 2)
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILD_ID_RE, BUNDLE_FILE, CACHE_FILE, loadBundle } from '../client/load-bundle.js';

/** This runs compiled, from dist/scripts/. */
const DIST_CLIENT = fileURLToPath(new URL('../client/', import.meta.url));

function writeAtomically(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

async function bundle(): Promise<void> {
  const { build } = await import('esbuild');
  const id = randomBytes(16).toString('hex');
  rmSync(join(DIST_CLIENT, CACHE_FILE), { force: true });
  const result = await build({
    entryPoints: [join(DIST_CLIENT, 'main.js')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    write: false,
    // required from node_modules only on the paths a default knock does not take: openpgp.js
    // (native-seal.ts seals default keys; other keys, key files and passphrases need it) and zod
    external: ['openpgp', 'zod'],
    charset: 'ascii',
    // a CommonJS file run by vm.Script: import() would need an experimental vm loader, so every
    // dynamic import becomes a require (the modules it names are all in the bundle or CommonJS)
    supported: { 'dynamic-import': false },
    // openpgp.js's node build calls createRequire(import.meta.url)
    define: { 'import.meta.url': '__spa_import_meta_url' },
    banner: { js: "const __spa_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
    footer: { js: `//# spa-build-id=${id}` },
    legalComments: 'none',
    logLevel: 'warning',
  });
  const out = result.outputFiles[0];
  if (!out || result.outputFiles.length !== 1) throw new Error('esbuild: expected exactly one output file');
  writeAtomically(join(DIST_CLIENT, BUNDLE_FILE), out.contents);
  const warm = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--warm'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (warm.status !== 0) throw new Error(`bundle-client: the warm-up knock failed (status ${warm.status})`);
  console.log(
    `bundle-client: ${BUNDLE_FILE} (${(out.contents.length / 1024).toFixed(0)} KiB) and ${CACHE_FILE}`,
  );
}

/** Step 2, in a fresh process so that the cache holds what one knock compiles and nothing else. */
async function warm(): Promise<void> {
  const { generateKeyPair } = await import('../keyring/generate.js');
  const { generateOwnKey, importKey } = await import('../keyring/keystore.js');
  const root = mkdtempSync(join(tmpdir(), 'spa-bundle-'));
  const listener = createSocket('udp4');
  try {
    const home = join(root, 'home');
    await generateOwnKey(home, { username: 'warmup' });
    const server = await generateKeyPair({ type: 'curve25519', userId: { name: 'warm-up server' } });
    await importKey(home, server.publicKeyArmored, { name: 'warmup' });
    const got = new Promise<void>((resolve) => listener.once('message', () => resolve()));
    await new Promise<void>((resolve) => listener.bind(0, '127.0.0.1', () => resolve()));
    const port = String(listener.address().port);
    const loaded = loadBundle(DIST_CLIENT, { useCache: false });
    if (!loaded) throw new Error(`no ${BUNDLE_FILE} in ${DIST_CLIENT}`);
    const base = ['--home', home, '-A', 'tcp/22', '-p', port, '127.0.0.1'];
    for (const argv of [['--test', ...base], base]) {
      const code = await loaded.main(argv);
      if (code !== 0) throw new Error(`spa ${argv.join(' ')}: exit ${code}`);
    }
    await got;
    const cache = loaded.script.createCachedData();
    const id = BUILD_ID_RE.exec(readFileSync(join(DIST_CLIENT, BUNDLE_FILE), 'latin1').slice(-80))?.[1];
    if (id === undefined) throw new Error(`${BUNDLE_FILE} has no build id`);
    writeAtomically(join(DIST_CLIENT, CACHE_FILE), Buffer.concat([Buffer.from(id, 'latin1'), cache]));
  } finally {
    listener.close();
    rmSync(root, { recursive: true, force: true });
  }
}

(process.argv.includes('--warm') ? warm() : bundle()).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
