/**
 * The audit log file: created 0600 whatever the umask (it names users and their addresses), and
 * reopened by name on request, which spad does on SIGUSR1 after logrotate moved the file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAudit } from '../../server/audit.js';

async function waitForText(path: string, needle: string, ms = 3000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '');
    if (text.includes(needle) || Date.now() > end) return text;
    await sleep(20);
  }
}

describe('audit log file', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const tmp = async () => {
    const d = await mkdtemp(join(tmpdir(), 'spa-audit-'));
    dirs.push(d);
    return d;
  };

  test('is created with mode 0600 even under umask 0', async () => {
    const file = join(await tmp(), 'audit.jsonl');
    const old = process.umask(0);
    try {
      const audit = createAudit({ file });
      audit.log('start', { detail: 'test' });
      await waitForText(file, '"start"');
      audit.flush();
    } finally {
      process.umask(old);
    }
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  test('after the file is renamed (logrotate), reopen() sends new lines to a new file at the same name', async () => {
    const dir = await tmp();
    const file = join(dir, 'audit.jsonl');
    const audit = createAudit({ file });
    audit.log('start', { detail: 'before rotation' });
    await waitForText(file, 'before rotation');
    await rename(file, `${file}.1`);
    audit.log('reload', { detail: 'still the old file' });
    await waitForText(`${file}.1`, 'still the old file');
    audit.reopen?.();
    audit.log('stop', { detail: 'after reopen' });
    const fresh = await waitForText(file, 'after reopen');
    audit.flush();
    assert.match(fresh, /after reopen/);
    assert.doesNotMatch(fresh, /before rotation|still the old file/);
    const rotated = await readFile(`${file}.1`, 'utf8');
    assert.match(rotated, /before rotation/);
    assert.doesNotMatch(rotated, /after reopen/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });
});
