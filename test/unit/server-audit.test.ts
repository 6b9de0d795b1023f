/**
 * The audit log file: created 0600 whatever the umask (it names users and their addresses), and
 * reopened by name on request, which spad does on SIGUSR1 after logrotate moved the file; and
 * `spad -v`'s counters lines, written only in verbose mode and only when the counters moved.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { countersReporter, createAudit, memoryAudit } from '../../server/audit.js';

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

  test('counters lines are written with -v (verbose) and not without', async () => {
    const dir = await tmp();
    const written = async (verbose: boolean): Promise<string> => {
      const file = join(dir, `audit-${verbose}.jsonl`);
      const audit = createAudit({ file, verbose });
      audit.log('counters', { counters: { SIG_INVALID: 3 } });
      audit.log('stop', { detail: 'last line' });
      const text = await waitForText(file, 'last line');
      audit.flush();
      return text;
    };
    assert.match(
      await written(true),
      /"level":"debug".*"event":"counters"|"event":"counters".*"level":"debug"/,
    );
    assert.doesNotMatch(await written(false), /counters/);
  });
});

describe('spad -v counters', () => {
  test('a line when the counters changed since the last one, none while they stay the same', () => {
    const audit = memoryAudit();
    let counters: Record<string, number> = {};
    const report = countersReporter(audit, () => counters);
    report();
    counters = { SIG_INVALID: 1 };
    report();
    report();
    counters = { SIG_INVALID: 2, REPLAY: 1 };
    report();
    assert.deepEqual(
      audit.lines.map((l) => l.counters),
      [{ SIG_INVALID: 1 }, { SIG_INVALID: 2, REPLAY: 1 }],
    );
  });
});
