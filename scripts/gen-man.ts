/**
 * Builds the man pages spa(1), spad(8) and spa-keys(8) from their markdown in docs/man/ with
 * marked-man (markdown to roff), at pack time (scripts/prepack.sh); package.json "man" installs
 * them. A converter that prints anything on stderr fails the build.
 *
 * Usage: node dist/scripts/gen-man.js OUT_DIR
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** This runs compiled, from dist/scripts/. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MAN_SOURCES = join(ROOT, 'docs', 'man');
export const MAN_PAGES = ['spa.1', 'spad.8', 'spa-keys.8'] as const;

function markedMan(): string {
  const pkg = createRequire(import.meta.url).resolve('marked-man/package.json');
  return join(dirname(pkg), 'bin', 'marked-man.js');
}

function convert(file: string, version: string): Promise<string> {
  return new Promise((resolvePage, reject) => {
    execFile(
      process.execPath,
      [markedMan(), '--no-breaks', '--version', version, '--manual', 'spa manual', file],
      { maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`marked-man ${file}: ${String(stderr).trim() || err.message}`));
        if (String(stderr).trim()) return reject(new Error(`marked-man ${file}: ${String(stderr).trim()}`));
        resolvePage(String(stdout));
      },
    );
  });
}

/** Writes OUT_DIR/spa.1 etc.; returns their paths. */
export async function buildManPages(outDir: string): Promise<string[]> {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  mkdirSync(outDir, { recursive: true });
  const out: string[] = [];
  for (const page of MAN_PAGES) {
    const roff = await convert(join(MAN_SOURCES, `${page}.md`), version);
    const path = join(outDir, page);
    writeFileSync(path, roff);
    out.push(path);
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const outDir = process.argv[2];
  if (!outDir) {
    process.stderr.write('usage: gen-man OUT_DIR\n');
    process.exit(2);
  }
  for (const p of await buildManPages(outDir)) process.stdout.write(`gen-man: wrote ${p}\n`);
}
