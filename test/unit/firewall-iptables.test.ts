import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSpaError } from '../../protocol/errors.js';
import { createFirewall, type FirewallOptions } from '../../server/firewall/index.js';
import { parseIptList } from '../../server/firewall/iptables.js';
import { type Call, FakeRunner, iptListing } from './firewall-fake-runner.js';

const NOW = 1_700_000_000_000;
const SEC = NOW / 1000;
const OPTS: FirewallOptions = {
  protect: [
    { proto: 'tcp', port: 22 },
    { proto: 'udp', port: 53 },
  ],
  alwaysAllow: ['10.0.0.0/8', '2001:db8:ff::/48'],
  now: () => NOW,
};

const EST = '-A SPA_INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN';
const DROPS = [
  '-A SPA_INPUT -p tcp -m tcp --dport 22 -m comment --comment spa_protect -j DROP',
  '-A SPA_INPUT -p udp -m udp --dport 53 -m comment --comment spa_protect -j DROP',
];
const FIXED: Record<4 | 6, string[]> = {
  4: [
    EST,
    '-A SPA_INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT',
    '-A SPA_INPUT -s 10.0.0.0/8 -p udp -m udp --dport 53 -j ACCEPT',
    ...DROPS,
  ],
  6: [
    EST,
    '-A SPA_INPUT -s 2001:db8:ff::/48 -p tcp -m tcp --dport 22 -j ACCEPT',
    '-A SPA_INPUT -s 2001:db8:ff::/48 -p udp -m udp --dport 53 -j ACCEPT',
    ...DROPS,
  ],
};
const JUMP = '-A INPUT -j SPA_INPUT';

function grantLine(src: string, proto: string, port: number, exp: number): string {
  const max = src.includes(':') ? 128 : 32;
  return `-A SPA_INPUT -s ${src}/${max} -p ${proto} -m ${proto} --dport ${port} -m comment --comment spa_exp_${exp} -j ACCEPT`;
}

interface FakeTable {
  input: string[];
  rules: string[];
  chainExists: boolean;
}

/**
 * Answers `-S` from a per-family table; restores succeed. After a restore the table becomes
 * `afterRestore(family)` when given, so init can read back what it installed.
 */
function iptRunner(tables: Record<4 | 6, FakeTable>, afterRestore?: (f: 4 | 6) => FakeTable) {
  return new FakeRunner((c: Call) => {
    const family = c.cmd.startsWith('ip6') ? 6 : 4;
    if (c.cmd.endsWith('-restore')) {
      if (afterRestore) tables[family] = afterRestore(family);
      return undefined;
    }
    const t = tables[family];
    if (c.args.length === 3) return { stdout: iptListing(t) };
    if (!t.chainExists) return { code: 1, stderr: 'iptables: No chain/target/match by that name.\n' };
    return { stdout: `-N SPA_INPUT\n${t.rules.join('\n')}\n` };
  });
}

const empty = (): FakeTable => ({ input: [], rules: [], chainExists: false });
const installed = (f: 4 | 6, grants: string[] = []): FakeTable => ({
  input: [JUMP],
  rules: [FIXED[f][0] as string, ...grants, ...FIXED[f].slice(1)],
  chainExists: true,
});

describe('iptables backend: generated commands', () => {
  test('init on a clean host builds chain, always_allow, drops and the jump in one restore per family', async () => {
    const r = iptRunner({ 4: empty(), 6: empty() }, (f) => installed(f));
    const fw = createFirewall('iptables', OPTS, r);
    assert.equal(fw.backend, 'iptables');
    await fw.init();
    assert.deepEqual(
      r.calls.map((c) => [c.cmd, ...c.args].join(' ')),
      [
        'iptables -w 5 -S',
        'iptables-restore -w 5 --noflush',
        'iptables -w 5 -S',
        'ip6tables -w 5 -S',
        'ip6tables-restore -w 5 --noflush',
        'ip6tables -w 5 -S',
      ],
    );
    assert.equal(
      r.calls[1]?.input,
      [
        '*filter',
        ':SPA_INPUT - [0:0]',
        '-F SPA_INPUT',
        EST,
        ...FIXED[4].slice(1),
        '-I INPUT 1 -j SPA_INPUT',
        'COMMIT',
        '',
      ].join('\n'),
    );
    assert.match(
      r.calls[4]?.input ?? '',
      /-A SPA_INPUT -s 2001:db8:ff::\/48 -p tcp -m tcp --dport 22 -j ACCEPT\n/,
    );
    assert.ok(!(r.calls[4]?.input ?? '').includes('10.0.0.0'), 'an IPv4 block went to ip6tables');
  });

  test('init after a crash keeps unexpired grants, drops expired and foreign rules, and leaves one jump at the top', async () => {
    const keep = grantLine('198.51.100.2', 'tcp', 22, SEC + 30);
    const tables: Record<4 | 6, FakeTable> = {
      4: {
        input: ['-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT', JUMP, JUMP],
        rules: [
          EST,
          grantLine('198.51.100.3', 'tcp', 22, SEC - 1),
          grantLine('198.51.100.4', 'tcp', 22, SEC),
          keep,
          '-A SPA_INPUT -s 203.0.113.0/24 -j ACCEPT',
          ...DROPS,
        ],
        chainExists: true,
      },
      6: installed(6),
    };
    const r = iptRunner(tables, (f) => installed(f, f === 4 ? [keep] : []));
    await createFirewall('iptables', OPTS, r).init();
    const script = r.calls[1]?.input ?? '';
    assert.equal(
      script,
      [
        '*filter',
        ':SPA_INPUT - [0:0]',
        '-F SPA_INPUT',
        EST,
        keep,
        ...FIXED[4].slice(1),
        '-D INPUT -j SPA_INPUT',
        '-D INPUT -j SPA_INPUT',
        '-I INPUT 1 -j SPA_INPUT',
        'COMMIT',
        '',
      ].join('\n'),
    );
    // IPv6 was already right: no jump churn there.
    assert.ok(!(r.calls[4]?.input ?? '').includes('INPUT 1'));
  });

  test('a restart with other protected ports rebuilds with them and keeps only grants for ports still protected', async () => {
    const ssh = grantLine('198.51.100.2', 'tcp', 22, SEC + 30);
    const dns = grantLine('198.51.100.2', 'udp', 53, SEC + 30);
    const tables: Record<4 | 6, FakeTable> = { 4: installed(4, [ssh, dns]), 6: installed(6) };
    const next = (f: 4 | 6): FakeTable => ({
      input: [JUMP],
      rules: [
        EST,
        ...(f === 4 ? [ssh] : []),
        '-A SPA_INPUT -p tcp -m tcp --dport 22 -m comment --comment spa_protect -j DROP',
        '-A SPA_INPUT -p tcp -m tcp --dport 443 -m comment --comment spa_protect -j DROP',
      ],
      chainExists: true,
    });
    const r = iptRunner(tables, next);
    const fw = createFirewall(
      'iptables',
      {
        ...OPTS,
        protect: [
          { proto: 'tcp', port: 22 },
          { proto: 'tcp', port: 443 },
        ],
        alwaysAllow: [],
      },
      r,
    );
    await fw.init();
    assert.equal(
      r.calls[1]?.input,
      [
        '*filter',
        ':SPA_INPUT - [0:0]',
        '-F SPA_INPUT',
        EST,
        ssh,
        '-A SPA_INPUT -p tcp -m tcp --dport 22 -m comment --comment spa_protect -j DROP',
        '-A SPA_INPUT -p tcp -m tcp --dport 443 -m comment --comment spa_protect -j DROP',
        'COMMIT',
        '',
      ].join('\n'),
    );
    await assert.rejects(
      fw.grant({ source: '198.51.100.2', ports: [{ proto: 'udp', port: 53 }], timeoutSeconds: 5 }),
      (e) => isSpaError(e) && e.code === 'PORT_NOT_ALLOWED',
    );
  });

  test('init refuses to report success when the chain read back lacks the jump or a drop', async () => {
    const r = iptRunner({ 4: empty(), 6: empty() }, (f) => ({
      ...installed(f),
      rules: FIXED[f].slice(0, -1),
    }));
    await assert.rejects(
      createFirewall('iptables', OPTS, r).init(),
      (e) => isSpaError(e) && e.code === 'FW_ERROR',
    );
    const r2 = iptRunner({ 4: empty(), 6: empty() }, (f) => ({ ...installed(f), input: [] }));
    await assert.rejects(
      createFirewall('iptables', OPTS, r2).init(),
      (e) => isSpaError(e) && e.code === 'FW_ERROR',
    );
  });

  test('a grant lists our chain, then deletes the same keys by spec and inserts the new rules above the drops', async () => {
    const old = grantLine('198.51.100.2', 'tcp', 22, SEC + 5);
    const other = grantLine('198.51.100.9', 'tcp', 22, SEC + 5);
    const r = iptRunner({ 4: installed(4, [old, other]), 6: installed(6) });
    await createFirewall('iptables', OPTS, r).grant({
      source: '198.51.100.2',
      ports: [
        { proto: 'tcp', port: 22 },
        { proto: 'udp', port: 53 },
      ],
      timeoutSeconds: 30,
    });
    assert.deepEqual(
      r.calls.map((c) => [c.cmd, ...c.args].join(' ')),
      ['iptables -w 5 -S SPA_INPUT', 'iptables-restore -w 5 --noflush'],
    );
    assert.equal(
      r.calls[1]?.input,
      [
        '*filter',
        `-D SPA_INPUT ${old.slice('-A SPA_INPUT '.length)}`,
        `-I SPA_INPUT 2 -s 198.51.100.2/32 -p tcp -m tcp --dport 22 -m comment --comment spa_exp_${SEC + 30} -j ACCEPT`,
        `-I SPA_INPUT 2 -s 198.51.100.2/32 -p udp -m udp --dport 53 -m comment --comment spa_exp_${SEC + 30} -j ACCEPT`,
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  test('an IPv6 grant uses ip6tables and a /128 source in canonical form', async () => {
    const r = iptRunner({ 4: installed(4), 6: installed(6) });
    await createFirewall('iptables', { ...OPTS, now: () => NOW + 1 }, r).grant({
      source: '2001:0db8::0002',
      ports: [{ proto: 'tcp', port: 22 }],
      timeoutSeconds: 2,
    });
    assert.deepEqual(
      r.calls.map((c) => c.cmd),
      ['ip6tables', 'ip6tables-restore'],
    );
    // expiry rounds up to the next whole second, so a window is never shorter than asked
    assert.equal(
      r.calls[1]?.input,
      `*filter\n-I SPA_INPUT 2 -s 2001:db8::2/128 -p tcp -m tcp --dport 22 -m comment --comment spa_exp_${SEC + 3} -j ACCEPT\nCOMMIT\n`,
    );
  });

  test('sweep deletes exactly the expired grant rules by spec and reports how many', async () => {
    const expired4 = grantLine('198.51.100.2', 'tcp', 22, SEC - 10);
    const due4 = grantLine('198.51.100.3', 'udp', 53, SEC);
    const live4 = grantLine('198.51.100.4', 'tcp', 22, SEC + 1);
    const expired6 = grantLine('2001:db8::2', 'tcp', 22, SEC - 1);
    const r = iptRunner({ 4: installed(4, [expired4, due4, live4]), 6: installed(6, [expired6]) });
    assert.equal(await createFirewall('iptables', OPTS, r).sweep(NOW), 3);
    const restores = r.calls.filter((c) => c.cmd.endsWith('-restore'));
    assert.deepEqual(
      restores.map((c) => c.input),
      [
        `*filter\n${expired4.replace('-A', '-D')}\n${due4.replace('-A', '-D')}\nCOMMIT\n`,
        `*filter\n${expired6.replace('-A', '-D')}\nCOMMIT\n`,
      ],
    );
  });

  test('sweep with nothing expired lists but changes nothing', async () => {
    const r = iptRunner({
      4: installed(4, [grantLine('198.51.100.4', 'tcp', 22, SEC + 1)]),
      6: installed(6),
    });
    assert.equal(await createFirewall('iptables', OPTS, r).sweep(NOW), 0);
    assert.ok(r.calls.every((c) => !c.cmd.endsWith('-restore')));
  });

  test('flush deletes every grant rule in both families and keeps the rest of the chain', async () => {
    const g4 = grantLine('198.51.100.4', 'tcp', 22, SEC + 100);
    const g6 = grantLine('2001:db8::4', 'udp', 53, SEC + 100);
    const r = iptRunner({ 4: installed(4, [g4]), 6: installed(6, [g6]) });
    await createFirewall('iptables', OPTS, r).flush();
    assert.deepEqual(
      r.calls.filter((c) => c.cmd.endsWith('-restore')).map((c) => c.input),
      [`*filter\n${g4.replace('-A', '-D')}\nCOMMIT\n`, `*filter\n${g6.replace('-A', '-D')}\nCOMMIT\n`],
    );
  });

  test('shutdown removing protections deletes the jumps, then flushes and deletes the chain', async () => {
    const r = iptRunner({ 4: { ...installed(4), input: [JUMP, JUMP] }, 6: empty() });
    await createFirewall('iptables', OPTS, r).shutdown({ removeProtections: true });
    const restores = r.calls.filter((c) => c.cmd.endsWith('-restore'));
    assert.deepEqual(
      restores.map((c) => [c.cmd, c.input]),
      [
        [
          'iptables-restore',
          '*filter\n-D INPUT -j SPA_INPUT\n-D INPUT -j SPA_INPUT\n-F SPA_INPUT\n-X SPA_INPUT\nCOMMIT\n',
        ],
      ],
    );
  });

  test('shutdown keeping protections removes the grants, since nobody would sweep them', async () => {
    const g4 = grantLine('198.51.100.4', 'tcp', 22, SEC + 100);
    const r = iptRunner({ 4: installed(4, [g4]), 6: installed(6) });
    await createFirewall('iptables', OPTS, r).shutdown({ removeProtections: false });
    assert.deepEqual(
      r.calls.filter((c) => c.cmd.endsWith('-restore')).map((c) => c.input),
      [`*filter\n${g4.replace('-A', '-D')}\nCOMMIT\n`],
    );
  });

  test('a custom name gives an upper-case chain name in every command', async () => {
    const r = new FakeRunner((c) => (c.args.length === 3 ? { stdout: '' } : undefined));
    const fw = createFirewall('iptables', { ...OPTS, name: 'spa_t1' }, r);
    await fw.flush();
    assert.deepEqual(r.calls[0]?.args, ['-w', '5', '-S', 'SPA_T1_INPUT']);
  });
});

describe('iptables backend: listing and health', () => {
  test('a failing chain listing is checked against the whole table: a missing chain is empty, a broken iptables is an error', async () => {
    const missing = new FakeRunner((c) =>
      c.args.length === 4
        ? {
            code: 1,
            stderr: "iptables v1.8.9 (nf_tables): chain `SPA_INPUT' in table `filter' is incompatible\n",
          }
        : { stdout: iptListing({ chainExists: false }) },
    );
    const fw = createFirewall('iptables', OPTS, missing);
    assert.deepEqual(await fw.list(), []);
    await fw.flush();
    assert.ok(missing.calls.every((c) => !c.cmd.endsWith('-restore')));
    const broken = new FakeRunner(() => ({
      code: 4,
      stderr: 'Another app is currently holding the xtables lock.\n',
    }));
    await assert.rejects(createFirewall('iptables', OPTS, broken).flush(), (e) => {
      assert.ok(isSpaError(e) && e.code === 'FW_ERROR');
      assert.match((e as Error).message, /xtables lock/);
      return true;
    });
  });

  test('list reads both families and takes the expiry from the comment', async () => {
    const r = iptRunner({
      4: installed(4, [grantLine('198.51.100.2', 'tcp', 22, SEC + 30)]),
      6: installed(6, [grantLine('2001:db8::2', 'udp', 53, SEC + 9)]),
    });
    assert.deepEqual(await createFirewall('iptables', OPTS, r).list(), [
      { source: '198.51.100.2', proto: 'tcp', port: 22, expiresAt: NOW + 30_000 },
      { source: '2001:db8::2', proto: 'udp', port: 53, expiresAt: NOW + 9_000 },
    ]);
  });

  test('the parser accepts a quoted comment and ignores rules that only look like grants', () => {
    const text = [
      '-N SPA_INPUT',
      '-A SPA_INPUT -s 198.51.100.2/32 -p tcp -m tcp --dport 22 -m comment --comment "spa_exp_1700000030" -j ACCEPT',
      '-A SPA_INPUT -s 198.51.100.0/24 -p tcp -m tcp --dport 22 -m comment --comment spa_exp_1700000030 -j ACCEPT',
      '-A SPA_INPUT -s 198.51.100.3/32 -p tcp -m udp --dport 22 -m comment --comment spa_exp_1700000030 -j ACCEPT',
      '-A SPA_INPUT -s 198.51.100.3/32 -p tcp -m tcp --dport 70000 -m comment --comment spa_exp_1700000030 -j ACCEPT',
      '-A SPA_INPUT -s 198.51.100.3/32 -p tcp -m tcp --dport 22 -m comment --comment spa_exp_1700000030 -j DROP',
      '-A SPA_INPUT -s 2001:db8::3/128 -p tcp -m tcp --dport 22 -m comment --comment spa_exp_1700000030 -j ACCEPT',
      '-A OTHER -s 198.51.100.5/32 -p tcp -m tcp --dport 22 -m comment --comment spa_exp_1700000030 -j ACCEPT',
    ].join('\n');
    const v = parseIptList(text, 'SPA_INPUT', 4);
    assert.deepEqual(v.grants, [
      { family: 4, source: '198.51.100.2', proto: 'tcp', port: 22, exp: 1_700_000_030 },
    ]);
    assert.equal(v.fixed.length, 5);
  });

  test('healthy is false before init and true after it while chain and jump are unchanged', async () => {
    const tables = { 4: empty(), 6: empty() };
    const fw = createFirewall(
      'iptables',
      OPTS,
      iptRunner(tables, (f) => installed(f)),
    );
    assert.equal(await fw.healthy(), false);
    await fw.init();
    assert.equal(await fw.healthy(), true);
    tables[4] = installed(4, [grantLine('198.51.100.2', 'tcp', 22, SEC + 3)]);
    assert.equal(await fw.healthy(), true, 'a grant is not damage');
  });

  test('healthy is false when the jump is gone, doubled or not first, or the chain lost a drop or vanished', async () => {
    const damaged: FakeTable[] = [
      { ...installed(4), input: [] },
      { ...installed(4), input: [JUMP, JUMP] },
      { ...installed(4), input: ['-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT', JUMP] },
      { ...installed(4), rules: FIXED[4].slice(0, -1) },
      { ...installed(4), rules: [] },
      empty(),
    ];
    for (const [i, broken] of damaged.entries()) {
      const tables = { 4: empty(), 6: empty() };
      const fw = createFirewall(
        'iptables',
        OPTS,
        iptRunner(tables, (f) => installed(f)),
      );
      await fw.init();
      tables[4] = broken;
      assert.equal(await fw.healthy(), false, `variant ${i}`);
    }
  });

  test('a failing iptables-restore surfaces as FW_ERROR with its first error line', async () => {
    const r = new FakeRunner((c) =>
      c.cmd.endsWith('-restore')
        ? { code: 1, stderr: 'iptables-restore: line 2 failed: Index of insertion too big.\n' }
        : { stdout: '-N SPA_INPUT\n' },
    );
    const fw = createFirewall('iptables', OPTS, r);
    await assert.rejects(
      fw.grant({ source: '198.51.100.2', ports: [{ proto: 'tcp', port: 22 }], timeoutSeconds: 3 }),
      (e) => {
        assert.ok(isSpaError(e) && e.code === 'FW_ERROR');
        assert.match((e as Error).message, /iptables-restore: exit 1: .*Index of insertion too big/);
        return true;
      },
    );
  });
});

describe('iptables backend: the SPA port dropped in pcap mode (stealthPort)', () => {
  const STEALTH_OPTS: FirewallOptions = { ...OPTS, stealthPort: 62201 };
  const STEALTH = '-A SPA_INPUT -p udp -m udp --dport 62201 -m comment --comment spa_stealth -j DROP';
  const stealthy = (f: 4 | 6, grants: string[] = []): FakeTable => ({
    input: [JUMP],
    rules: [STEALTH, EST, ...grants, ...FIXED[f].slice(1)],
    chainExists: true,
  });

  test('init puts the drop of the SPA port first in our chain, for iptables and ip6tables alike, also with always_allow', async () => {
    const r = iptRunner({ 4: empty(), 6: empty() }, (f) => stealthy(f));
    await createFirewall('iptables', STEALTH_OPTS, r).init();
    for (const [i, f] of [
      [1, 4],
      [4, 6],
    ] as const) {
      assert.equal(
        r.calls[i]?.input,
        [
          '*filter',
          ':SPA_INPUT - [0:0]',
          '-F SPA_INPUT',
          STEALTH,
          EST,
          ...FIXED[f].slice(1),
          '-I INPUT 1 -j SPA_INPUT',
          'COMMIT',
          '',
        ].join('\n'),
      );
    }
  });

  test('grants go in below the drop of the SPA port and the established rule', async () => {
    const r = iptRunner({ 4: stealthy(4), 6: stealthy(6) });
    await createFirewall('iptables', STEALTH_OPTS, r).grant({
      source: '198.51.100.2',
      ports: [{ proto: 'tcp', port: 22 }],
      timeoutSeconds: 30,
    });
    assert.equal(
      r.calls[1]?.input,
      [
        '*filter',
        `-I SPA_INPUT 3 -s 198.51.100.2/32 -p tcp -m tcp --dport 22 -m comment --comment spa_exp_${SEC + 30} -j ACCEPT`,
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  test('init fails when the chain read back does not start with the drop of the SPA port', async () => {
    const r = iptRunner({ 4: empty(), 6: empty() }, (f) => installed(f));
    await assert.rejects(
      createFirewall('iptables', STEALTH_OPTS, r).init(),
      (e) => isSpaError(e) && e.code === 'FW_ERROR',
    );
  });

  test('healthy is false when an admin removed the drop of the SPA port from either family', async () => {
    for (const f of [4, 6] as const) {
      const tables = { 4: empty(), 6: empty() };
      const fw = createFirewall(
        'iptables',
        STEALTH_OPTS,
        iptRunner(tables, (g) => stealthy(g)),
      );
      await fw.init();
      assert.equal(await fw.healthy(), true);
      tables[f] = installed(f);
      assert.equal(await fw.healthy(), false, `family ${f}`);
    }
  });
});
