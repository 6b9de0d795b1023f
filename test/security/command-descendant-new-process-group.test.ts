/**
 * Attack (issue #10, item 7, review): a command's descendant escapes the kill by moving to a
 * process group of its own with setpgid() (what any job-control shell, `perl -e setpgrp` or a
 * half-daemonising program does), without leaving the session. spad killed only the command's
 * process group, so such a descendant outlived the command and its time limit.
 *
 * Runs the real command runner (server/commands.ts) with real processes as `nobody`; needs root.
 */
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { alive, notRoot, runAndReadPid, until } from './command-fixtures.js';
import { tempDir } from './rig.js';

describe('a descendant that moves to a process group of its own', { skip: notRoot }, () => {
  let work: string;
  let script: string;
  before(() => {
    work = tempDir();
    chmodSync(work, 0o777);
    script = join(work, 'own-group');
    // fork; the child calls setpgid(0, 0) (same session, new group), closes the output pipes
    // and sleeps; the parent writes the child's pid and exits at once or waits past the limit
    writeFileSync(
      script,
      [
        '#!/usr/bin/perl',
        'my $pid = fork();',
        'if ($pid == 0) {',
        '  setpgrp(0, 0);',
        '  open(STDOUT, ">", "/dev/null"); open(STDERR, ">", "/dev/null");',
        '  sleep 60; exit 0;',
        '}',
        `open(my $f, ">", "${work}/pgrp.$ARGV[0].pid"); print $f $pid; close $f;`,
        'sleep 30 if $ARGV[0] eq "wait";',
        'exit 0;',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
  });

  function leftBehind(arg: string, timeoutSeconds: number): Promise<number> {
    return runAndReadPid(`${script} ${arg}`, timeoutSeconds, join(work, `pgrp.${arg}.pid`));
  }

  test('is killed when the command exits', async () => {
    const pid = await leftBehind('now', 10);
    try {
      assert.ok(await until(() => !alive(pid), 3000), `pid ${pid} still runs after the command ended`);
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  test('is killed at the time limit', async () => {
    const pid = await leftBehind('wait', 1);
    try {
      assert.ok(await until(() => !alive(pid), 5000), `pid ${pid} still runs after the time limit`);
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});
