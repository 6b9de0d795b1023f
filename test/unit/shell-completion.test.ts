/**
 * Shell completion generated from the commander definitions (scripts/gen-completion.ts): the
 * bash files source cleanly and complete subcommands, flags and flag choices as bash would ask
 * them; the zsh files parse; nothing a program defines is left out.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { programs, writeCompletions } from '../../scripts/gen-completion.js';

const dir = mkdtempSync(join(tmpdir(), 'spa-completion-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeCompletions(dir);

function shell(sh: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(sh, args, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

/** What bash offers for the last word of `line` (split on spaces; a trailing space starts a new word). */
async function complete(prog: string, line: string): Promise<string[]> {
  const words = line.split(' ');
  const script = `
source ${JSON.stringify(join(dir, 'bash', prog))} || exit 9
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${words.length - 1}
fn=$(complete -p ${prog} | sed -E 's/.* -F ([^ ]+) .*/\\1/')
"$fn"
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = await shell('bash', ['-c', script]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).sort();
}

test('the bash completion files parse and register a completion for each binary', async () => {
  for (const prog of ['spa', 'spad', 'spa-keys']) {
    const file = join(dir, 'bash', prog);
    assert.equal((await shell('bash', ['-n', file])).code, 0);
    const r = await shell('bash', ['-c', `source ${JSON.stringify(file)} && complete -p ${prog}`]);
    assert.match(r.stdout, new RegExp(`^complete -o default -F \\S+ ${prog}$`, 'm'));
  }
});

test('bash completes subcommands, long flags and the choices of --firewall', async () => {
  assert.deepEqual(await complete('spa-keys', 'spa-keys '), [
    'add',
    'disable',
    'enable',
    'export-server',
    'gen',
    'import',
    'import-fwknop',
    'init',
    'list',
    'remove',
    'show',
  ]);
  assert.deepEqual(await complete('spa-keys', 'spa-keys add --max'), ['--max-timeout']);
  assert.deepEqual(await complete('spad', 'spad --firewall '), ['iptables', 'nftables']);
  assert.deepEqual(await complete('spad', 'spad install-service --un'), ['--unit-file']);
  assert.deepEqual(await complete('spa', 'spa -A tcp/22 --gpg-r'), ['--gpg-recv']);
  assert.deepEqual(await complete('spa', 'spa connect --connect'), ['--connect-timeout']);
});

test('every option of every command is in the bash file', () => {
  for (const prog of programs()) {
    const words = new Set(readFileSync(join(dir, 'bash', prog.name), 'utf8').split(/[\s'|)]+/));
    for (const c of [prog, ...prog.commands]) {
      for (const o of c.options)
        for (const n of o.names) assert.ok(words.has(n), `${prog.name} ${c.name} ${n}`);
    }
  }
});

const ZSH = ['/usr/bin/zsh', '/bin/zsh'].find((p) => existsSync(p));
test(
  'the zsh completion files parse',
  { skip: ZSH ? false : 'zsh is not installed (scripts/setup.sh installs it)' },
  async () => {
    for (const prog of ['spa', 'spad', 'spa-keys']) {
      const file = join(dir, 'zsh', `_${prog}`);
      const r = await shell(ZSH as string, ['-n', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(readFileSync(file, 'utf8'), new RegExp(`^#compdef ${prog}$`, 'm'));
    }
  },
);
