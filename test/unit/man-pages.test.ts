/**
 * The man pages spa(1), spad(8) and spa-keys(8): built from docs/man/*.md by the converter the
 * package build uses (scripts/gen-man.ts, which fails on any converter warning), rendered by
 * `man -l` and checked by groff with every warning on, and complete: each page names every
 * subcommand and long option its program defines.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { programs } from '../../scripts/gen-completion.js';
import { buildManPages, MAN_PAGES, MAN_SOURCES } from '../../scripts/gen-man.js';

const dir = mkdtempSync(join(tmpdir(), 'spa-man-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { env: { ...process.env, MANWIDTH: '80', LC_ALL: 'C.UTF-8' }, maxBuffer: 8 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

const has = (bin: string): boolean => ['/usr/bin', '/bin'].some((d) => existsSync(join(d, bin)));

describe('man pages', () => {
  let pages: string[] = [];
  before(async () => {
    pages = await buildManPages(dir);
  });

  test('the converter builds spa.1, spad.8 and spa-keys.8 without a warning', () => {
    assert.deepEqual(
      pages.map((p) => basename(p)),
      [...MAN_PAGES],
    );
  });

  for (const page of MAN_PAGES) {
    test(
      `man -l renders ${page} with no warning`,
      { skip: has('man') ? false : 'man-db is not installed' },
      async () => {
        const r = await run('man', ['--warnings', '-l', join(dir, page)]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '', 'no warnings');
        const [name, section] = page.split('.') as [string, string];
        assert.match(r.stdout, new RegExp(`^${name.toUpperCase()}\\(${section}\\)`));
        assert.match(r.stdout, /^NAME\n\s+\S+ - /m);
      },
    );

    test(
      `groff -ww finds nothing to warn about in ${page}`,
      { skip: has('groff') ? false : 'groff is not installed' },
      async () => {
        const r = await run('groff', ['-ww', '-z', '-man', join(dir, page)]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '');
      },
    );
  }

  test('each page names every subcommand and long option of its program', () => {
    const pageOf: Record<string, string> = { spa: 'spa.1', spad: 'spad.8', 'spa-keys': 'spa-keys.8' };
    for (const prog of programs()) {
      const md = readFileSync(join(MAN_SOURCES, `${pageOf[prog.name]}.md`), 'utf8');
      const missing: string[] = [];
      for (const c of [prog, ...prog.commands]) {
        if (c !== prog && !md.includes(`\`${c.name}`)) missing.push(c.name);
        for (const o of c.options) {
          for (const n of o.names)
            if (n.startsWith('--') && !md.includes(`\`${n}\``)) missing.push(`${c.name} ${n}`);
        }
      }
      assert.deepEqual(missing, [], `${pageOf[prog.name]} documents everything`);
    }
  });
});
