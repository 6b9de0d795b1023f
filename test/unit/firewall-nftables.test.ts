import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isSpaError } from '../../protocol/errors.js';
import { GRANT_BATCH_MAX, LANE_REFRESH_MS } from '../../server/firewall/nftables.js';
import { createFirewall, type FirewallOptions } from '../../server/firewall/index.js';
import { parseNftTable } from '../../server/firewall/nft-ruleset.js';
import { FakeRunner, NFT_NO_TABLE, type NftListingOptions, nftListing } from './firewall-fake-runner.js';

const NOW = 1_700_000_000_000;
const OPTS: FirewallOptions = {
  protect: [
    { proto: 'tcp', port: 22 },
    { proto: 'udp', port: 53 },
  ],
  alwaysAllow: ['10.0.0.0/8', '192.0.2.7', '2001:db8:ff::/48'],
  now: () => NOW,
};

const INIT_SCRIPT = `add table inet spa
add set inet spa allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
add set inet spa allow6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
add counter inet spa dropped
add chain inet spa input { type filter hook input priority -10; policy accept; }
flush chain inet spa input
add rule inet spa input ct state established,related accept
add rule inet spa input meta l4proto != { tcp, udp } accept
add rule inet spa input meta l4proto . th dport != { tcp . 22, udp . 53 } accept
add rule inet spa input ip saddr . meta l4proto . th dport @allow4 accept
add rule inet spa input ip6 saddr . meta l4proto . th dport @allow6 accept
add rule inet spa input ip saddr { 10.0.0.0/8, 192.0.2.7 } accept
add rule inet spa input ip6 saddr { 2001:db8:ff::/48 } accept
add rule inet spa input counter name "dropped" drop
add set inet spa probe { type ipv4_addr; flags timeout; }
flush set inet spa probe
add element inet spa probe { 192.0.2.1 timeout 3600s }
`;

/** The table as OPTS installs it. */
const BASE: NftListingOptions = {
  protect: [
    ['tcp', 22],
    ['udp', 53],
  ],
  always4: [
    ['10.0.0.0', 8],
    ['192.0.2.7', 32],
  ],
  always6: [['2001:db8:ff::', 48]],
};
const LISTED = nftListing(BASE);

/** Answers `nft -j list table` with `listing()`, everything else with success. */
function nftRunner(listing: () => string | { code: number; stderr: string } = () => LISTED) {
  return new FakeRunner((c) => {
    if (!c.args.includes('list')) return undefined;
    const l = listing();
    return typeof l === 'string' ? { stdout: l } : l;
  });
}

describe('nftables backend: generated commands', () => {
  test('init installs table, sets, counter and chain in one nft transaction, probes timeout refresh, reads back', async () => {
    const r = nftRunner();
    const fw = createFirewall('nftables', OPTS, r);
    assert.equal(fw.backend, 'nftables');
    await fw.init();
    assert.deepEqual(r.calls, [
      { cmd: 'nft', args: ['-f', '-'], input: INIT_SCRIPT },
      { cmd: 'nft', args: ['-f', '-'], input: 'add element inet spa probe { 192.0.2.1 timeout 7200s }\n' },
      { cmd: 'nft', args: ['-j', 'list', 'table', 'inet', 'spa'], input: undefined },
      { cmd: 'nft', args: ['-f', '-'], input: 'delete set inet spa probe\n' },
    ]);
  });

  test('when re-adding moved the probe expiry, grants are a single add; otherwise add, delete, add', async () => {
    const g = { source: '198.51.100.2', ports: [{ proto: 'tcp' as const, port: 22 }], timeoutSeconds: 9 };
    const listing = (probe: number) => nftListing({ ...BASE, probe });
    const fresh = nftRunner(() => listing(7199));
    const fw1 = createFirewall('nftables', OPTS, fresh);
    await fw1.init();
    await fw1.grant(g);
    assert.equal(
      fresh.calls.at(-1)?.input,
      'add element inet spa allow4 { 198.51.100.2 . tcp . 22 timeout 9s }\n',
    );
    const old = nftRunner(() => listing(3599));
    const fw2 = createFirewall('nftables', OPTS, old);
    await fw2.init();
    await fw2.grant(g);
    assert.equal(
      old.calls.at(-1)?.input,
      'add element inet spa allow4 { 198.51.100.2 . tcp . 22 timeout 9s }\n' +
        'delete element inet spa allow4 { 198.51.100.2 . tcp . 22 }\n' +
        'add element inet spa allow4 { 198.51.100.2 . tcp . 22 timeout 9s }\n',
    );
  });

  test('init leaves the allow sets unflushed so a restart keeps granted users', async () => {
    assert.ok(!/flush set inet spa allow/.test(INIT_SCRIPT));
  });

  test('init without always_allow adds no empty element lists, and uses the configured table name', async () => {
    const r = nftRunner(() => nftListing({ name: 't1', protect: [['tcp', 22]] }));
    await createFirewall(
      'nftables',
      { protect: [{ proto: 'tcp', port: 22 }], alwaysAllow: [], name: 't1' },
      r,
    ).init();
    const script = r.calls[0]?.input ?? '';
    assert.ok(!script.includes('always4 {  }') && !script.includes('add element inet t1 always'));
    assert.ok(
      script
        .split('\n')
        .filter(Boolean)
        .every((l) => / inet t1( |$)/.test(l)),
    );
    assert.deepEqual(r.calls[2]?.args, ['-j', 'list', 'table', 'inet', 't1']);
  });

  test('init fails loudly when the table read back does not have all our rules', async () => {
    const r = nftRunner(() => nftListing({ ...BASE, rules: 7 }));
    await assert.rejects(
      createFirewall('nftables', OPTS, r).init(),
      (e) => isSpaError(e) && e.code === 'FW_ERROR',
    );
  });

  test('init removes allow-set elements that have no timeout, since they would never close', async () => {
    const r = nftRunner(() =>
      nftListing({
        ...BASE,
        allow4: [
          { source: '198.51.100.9', proto: 'tcp', port: 22 },
          { source: '198.51.100.2', proto: 'tcp', port: 22, timeout: 30 },
        ],
        allow6: [{ source: '2001:db8::9', proto: 'udp', port: 53 }],
      }),
    );
    await createFirewall('nftables', OPTS, r).init();
    assert.equal(r.calls.length, 4);
    assert.equal(
      r.calls[3]?.input,
      'delete set inet spa probe\n' +
        'delete element inet spa allow4 { 198.51.100.9 . tcp . 22 }\ndelete element inet spa allow6 { 2001:db8::9 . udp . 53 }\n',
    );
  });

  test('init rebuilds an incompatible leftover table in one transaction and carries live grants over', async () => {
    let listing = nftListing({
      allow4: [
        { source: '198.51.100.2', proto: 'tcp', port: 22, timeout: 60, expires: 41 },
        { source: '198.51.100.3', proto: 'tcp', port: 22, timeout: 60, expires: 0 },
      ],
      allow6: [{ source: '2001:db8::2', proto: 'udp', port: 53, timeout: 60, expires: 12 }],
    });
    let scripts = 0;
    const r = new FakeRunner((c) => {
      if (c.args[0] === '-j') return { stdout: listing };
      scripts++;
      if (scripts === 1) return { code: 1, stderr: 'Error: Could not process rule: File exists\n' };
      listing = LISTED;
      return undefined;
    });
    await createFirewall('nftables', OPTS, r).init();
    const rebuild = r.calls[2]?.input ?? '';
    assert.equal(
      rebuild,
      `add table inet spa\ndelete table inet spa\n${INIT_SCRIPT}` +
        'add element inet spa allow4 { 198.51.100.2 . tcp . 22 timeout 41s }\n' +
        'add element inet spa allow6 { 2001:db8::2 . udp . 53 timeout 12s }\n',
    );
  });

  test('init reports FW_ERROR with the exit code when nft itself fails twice', async () => {
    const r = new FakeRunner((c) =>
      c.args[0] === '-j'
        ? NFT_NO_TABLE
        : { code: 1, stderr: 'Error: Could not process rule: Operation not permitted\n' },
    );
    await assert.rejects(createFirewall('nftables', OPTS, r).init(), (e) => {
      assert.ok(isSpaError(e) && e.code === 'FW_ERROR');
      assert.match((e as Error).message, /exit 1: Error: Could not process rule: Operation not permitted/);
      return true;
    });
  });

  test('before init, a grant of several IPv4 ports is one nft invocation that adds, deletes and re-adds', async () => {
    const r = nftRunner();
    const fw = createFirewall('nftables', OPTS, r);
    await fw.grant({
      source: '198.51.100.2',
      ports: [
        { proto: 'tcp', port: 22 },
        { proto: 'udp', port: 53 },
      ],
      timeoutSeconds: 30,
    });
    assert.deepEqual(r.calls, [
      {
        cmd: 'nft',
        args: ['-f', '-'],
        input:
          'add element inet spa allow4 { 198.51.100.2 . tcp . 22 timeout 30s, 198.51.100.2 . udp . 53 timeout 30s }\n' +
          'delete element inet spa allow4 { 198.51.100.2 . tcp . 22, 198.51.100.2 . udp . 53 }\n' +
          'add element inet spa allow4 { 198.51.100.2 . tcp . 22 timeout 30s, 198.51.100.2 . udp . 53 timeout 30s }\n',
      },
    ]);
  });

  test('an IPv6 grant goes to the IPv6 set with the address in canonical form', async () => {
    const r = nftRunner();
    await createFirewall('nftables', OPTS, r).grant({
      source: '2001:DB8:0:0::0002',
      ports: [{ proto: 'tcp', port: 22 }],
      timeoutSeconds: 86_400,
    });
    assert.equal(
      r.calls[0]?.input,
      'add element inet spa allow6 { 2001:db8::2 . tcp . 22 timeout 86400s }\n' +
        'delete element inet spa allow6 { 2001:db8::2 . tcp . 22 }\n' +
        'add element inet spa allow6 { 2001:db8::2 . tcp . 22 timeout 86400s }\n',
    );
  });

  test('grants that arrive while another waits go in one transaction, at most GRANT_BATCH_MAX', async () => {
    const r = nftRunner();
    const fw = createFirewall('nftables', OPTS, r);
    const g = (i: number) => ({
      source: `198.51.100.${i}`,
      ports: [{ proto: 'tcp' as const, port: 22 }],
      timeoutSeconds: 30,
    });
    await Promise.all(Array.from({ length: GRANT_BATCH_MAX + 3 }, (_, i) => fw.grant(g(i + 1))));
    assert.equal(r.calls.length, 2, 'one full batch and the rest');
    const first = r.calls[0]?.input ?? '';
    assert.equal(first.match(/^add element inet spa allow4 /gm)?.length, GRANT_BATCH_MAX * 2, first);
    assert.match(r.calls[1]?.input ?? '', /198\.51\.100\.35 \. tcp/);
    // one at a time, each goes alone as before
    await fw.grant(g(40));
    assert.equal(r.calls.length, 3);
    assert.equal(r.calls[2]?.input?.match(/198\.51\.100\.40 /g)?.length, 3);
  });

  test('a batch nft refuses is sent grant by grant, so only the bad grant fails', async () => {
    const inputs: string[] = [];
    const fw = createFirewall('nftables', OPTS, {
      run(_cmd, _args, input) {
        inputs.push(input ?? '');
        const bad = (input ?? '').includes('198.51.100.2 ');
        return Promise.resolve(
          bad ? { code: 1, stdout: '', stderr: 'Error: x' } : { code: 0, stdout: '', stderr: '' },
        );
      },
    });
    const g = (i: number) => ({
      source: `198.51.100.${i}`,
      ports: [{ proto: 'tcp' as const, port: 22 }],
      timeoutSeconds: 30,
    });
    const results = await Promise.allSettled([1, 2, 3].map((i) => fw.grant(g(i))));
    assert.deepEqual(
      results.map((x) => x.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.equal(inputs.length, 4, 'the batch, then each of its three grants');
  });

  test('flush empties both allow sets in one transaction and nothing else', async () => {
    const r = nftRunner();
    await createFirewall('nftables', OPTS, r).flush();
    assert.deepEqual(
      r.calls.map((c) => c.input),
      ['flush set inet spa allow4\nflush set inet spa allow6\n'],
    );
  });

  test('sweep runs no command and reports zero: the kernel expires nftables grants', async () => {
    const r = nftRunner();
    assert.equal(await createFirewall('nftables', OPTS, r).sweep(NOW + 1e9), 0);
    assert.equal(r.calls.length, 0);
  });

  test('shutdown deletes only our table when asked, and does nothing otherwise', async () => {
    const r = nftRunner();
    const fw = createFirewall('nftables', OPTS, r);
    await fw.shutdown({ removeProtections: false });
    assert.equal(r.calls.length, 0);
    await fw.shutdown({ removeProtections: true });
    assert.deepEqual(
      r.calls.map((c) => c.input),
      ['add table inet spa\ndelete table inet spa\n'],
    );
  });
});

describe('nftables backend: listing and health', () => {
  test('list reports each element with its expiry from the seconds nft says are left', async () => {
    const r = nftRunner(() =>
      nftListing({
        allow4: [{ source: '198.51.100.2', proto: 'tcp', port: 22, timeout: 30, expires: 28 }],
        allow6: [{ source: '2001:db8:0::2', proto: 'udp', port: 53, timeout: 10, expires: 9 }],
      }),
    );
    assert.deepEqual(await createFirewall('nftables', OPTS, r).list(), [
      { source: '198.51.100.2', proto: 'tcp', port: 22, expiresAt: NOW + 28_000 },
      { source: '2001:db8::2', proto: 'udp', port: 53, expiresAt: NOW + 9_000 },
    ]);
  });

  test('list is empty when our table is gone, and fails with FW_ERROR when nft itself fails', async () => {
    assert.deepEqual(
      await createFirewall(
        'nftables',
        OPTS,
        nftRunner(() => NFT_NO_TABLE),
      ).list(),
      [],
    );
    const broken = nftRunner(() => ({ code: 1, stderr: 'Error: Operation not permitted\n' }));
    await assert.rejects(
      createFirewall('nftables', OPTS, broken).list(),
      (e) => isSpaError(e) && e.code === 'FW_ERROR',
    );
  });

  test('listing parser ignores elements of the wrong family, protocol or port and non-JSON is an error', () => {
    const json = JSON.stringify({
      nftables: [
        {
          set: {
            family: 'inet',
            name: 'allow4',
            table: 'spa',
            elem: [
              { concat: ['2001:db8::2', 'tcp', 22] },
              { elem: { val: { concat: ['198.51.100.2', 'icmp', 22] }, timeout: 1, expires: 1 } },
              { elem: { val: { concat: ['198.51.100.2', 'tcp', 0] }, timeout: 1, expires: 1 } },
              { elem: { val: { concat: ['198.51.100.2; x', 'tcp', 22] }, timeout: 1, expires: 1 } },
              { elem: { val: { concat: ['198.51.100.4', 6, '22'] }, timeout: 5, expires: 4 } },
            ],
          },
        },
      ],
    });
    assert.deepEqual(parseNftTable(json, 'spa', 0).grants, [
      { source: '198.51.100.4', proto: 'tcp', port: 22, expiresAt: 4000 },
    ]);
    assert.throws(
      () => parseNftTable('Error: oops', 'spa', 0),
      (e) => isSpaError(e) && e.code === 'FW_ERROR',
    );
  });

  test('healthy is false before init and true after it while the table is unchanged', async () => {
    const r = nftRunner();
    const fw = createFirewall('nftables', OPTS, r);
    assert.equal(await fw.healthy(), false);
    await fw.init();
    assert.equal(await fw.healthy(), true);
  });

  test('healthy reads the table tersely, so its cost does not grow with the number of grants', async () => {
    const many = Array.from({ length: 300 }, (_, i) => ({
      source: `198.51.100.${i % 250}`,
      proto: i < 250 ? 'tcp' : 'udp',
      port: i < 250 ? 22 : 53,
      timeout: 30,
    }));
    const r = new FakeRunner((c) =>
      c.args.includes('list')
        ? { stdout: nftListing({ ...BASE, allow4: many, terse: c.args.includes('-t') }) }
        : undefined,
    );
    const fw = createFirewall('nftables', OPTS, r);
    await fw.init();
    assert.equal(await fw.healthy(), true, 'full listing at init and terse listing later must agree');
    assert.deepEqual(r.calls.at(-1)?.args, ['-t', '-j', 'list', 'table', 'inet', 'spa']);
  });

  test('grants coming and going, counters counting and handles changing do not make the table unhealthy', async () => {
    let listing = LISTED;
    const fw = createFirewall(
      'nftables',
      OPTS,
      nftRunner(() => listing),
    );
    await fw.init();
    listing = nftListing({
      ...BASE,
      allow4: [{ source: '198.51.100.2', proto: 'tcp', port: 22, timeout: 30, expires: 3 }],
      packets: 1234,
      handleBase: 40,
    });
    assert.equal(await fw.healthy(), true);
  });

  test('healthy is false when an admin deleted the table, a rule, a protected port or an always_allow block', async () => {
    const variants: (() => string | { code: number; stderr: string })[] = [
      () => NFT_NO_TABLE,
      () => nftListing({ ...BASE, rules: 7 }),
      () => nftListing({ ...BASE, protect: [['tcp', 22]] }),
      () => nftListing({ ...BASE, always6: [] }),
      () => nftListing({ ...BASE, always4: [['10.0.0.0', 8]] }),
      () => ({ code: 1, stderr: 'Error: permission denied' }),
      () => 'not json',
    ];
    for (const [i, broken] of variants.entries()) {
      let listing: () => string | { code: number; stderr: string } = () => LISTED;
      const fw = createFirewall(
        'nftables',
        OPTS,
        nftRunner(() => listing()),
      );
      await fw.init();
      listing = broken;
      assert.equal(await fw.healthy(), false, `variant ${i}`);
    }
  });

  test('operations on one firewall never overlap: each command starts after the previous one ended', async () => {
    let running = 0;
    let overlap = false;
    const r = {
      async run() {
        running++;
        if (running > 1) overlap = true;
        await new Promise((res) => setTimeout(res, 5));
        running--;
        return { code: 0, stdout: LISTED, stderr: '' };
      },
    };
    const fw = createFirewall('nftables', OPTS, r);
    const g = { source: '198.51.100.2', ports: [{ proto: 'tcp' as const, port: 22 }], timeoutSeconds: 5 };
    await Promise.all([fw.init(), fw.grant(g), fw.grant(g), fw.list(), fw.flush(), fw.healthy()]);
    assert.equal(overlap, false);
  });
});

describe('nftables backend: the SPA port dropped in pcap mode (stealthPort)', () => {
  const STEALTH_OPTS: FirewallOptions = { ...OPTS, stealthPort: 62201 };
  const STEALTHY = nftListing({ ...BASE, stealth: 62201 });

  test('init drops udp/62201 for everyone but the returning lane, before established and always_allow', async () => {
    const r = nftRunner(() => STEALTHY);
    await createFirewall('nftables', STEALTH_OPTS, r).init();
    const rate = 'limit rate 10/second burst 10 packets';
    assert.equal(
      r.calls[0]?.input,
      INIT_SCRIPT.replace(
        'add counter',
        'add set inet spa returning4 { type ipv4_addr; flags timeout; }\n' +
          'add set inet spa returning6 { type ipv6_addr; flags timeout; }\n' +
          'add set inet spa returning_rate4 { type ipv4_addr; size 4096; flags dynamic,timeout; timeout 60s; }\n' +
          'add set inet spa returning_rate6 { type ipv6_addr; size 4096; flags dynamic,timeout; timeout 60s; }\n' +
          'add counter',
      ).replace(
        'add rule inet spa input ct state',
        `add rule inet spa input udp dport 62201 ip saddr @returning4 add @returning_rate4 { ip saddr ${rate} } accept\n` +
          `add rule inet spa input udp dport 62201 ip6 saddr @returning6 add @returning_rate6 { ip6 saddr ${rate} } accept\n` +
          'add rule inet spa input udp dport 62201 drop\nadd rule inet spa input ct state',
      ),
    );
  });

  test('a grant in pcap mode puts its source in the returning lane for 15 minutes, in the same transaction', async () => {
    const r = nftRunner(() => nftListing({ ...BASE, stealth: 62201, probe: 7200 }));
    const fw = createFirewall('nftables', STEALTH_OPTS, r);
    await fw.init();
    r.calls.length = 0;
    await fw.grant({
      source: '::ffff:198.51.100.2',
      ports: [{ proto: 'tcp', port: 22 }],
      timeoutSeconds: 30,
    });
    assert.equal(r.calls.length, 1);
    assert.equal(
      r.calls[0]?.input,
      'add element inet spa allow4 { 198.51.100.2 . tcp . 22 timeout 30s }\n' +
        'add element inet spa returning4 { 198.51.100.2 timeout 900s }\n',
      'a kernel that refreshes timeouts with one add (>= 6.10)',
    );
  });

  test("a source's lane element is refreshed by a grant at most once a minute, and again after init", async () => {
    let now = NOW;
    const r = nftRunner(() => nftListing({ ...BASE, stealth: 62201, probe: 7200 }));
    const fw = createFirewall('nftables', { ...STEALTH_OPTS, now: () => now }, r);
    await fw.init();
    const g = { source: '198.51.100.2', ports: [{ proto: 'tcp' as const, port: 22 }], timeoutSeconds: 30 };
    const lane = async (): Promise<boolean> => {
      await fw.grant(g);
      return (r.calls.at(-1)?.input ?? '').includes('returning4');
    };
    assert.equal(await lane(), true, 'first grant');
    now += LANE_REFRESH_MS - 1;
    assert.equal(await lane(), false, 'within the minute');
    assert.equal((r.calls.at(-1)?.input ?? '').includes('allow4'), true, 'the grant itself still goes in');
    now += 1;
    assert.equal(await lane(), true, 'a minute later');
    await fw.init();
    assert.equal(await lane(), true, 'after init: the table may have been rebuilt');
  });

  test('a grant that failed leaves the lane element to be added by the next one', async () => {
    let fail = true;
    const listing = nftListing({ ...BASE, stealth: 62201, probe: 7200 });
    const calls: string[] = [];
    const fw = createFirewall('nftables', STEALTH_OPTS, {
      run(_cmd, args, input) {
        if (input !== undefined) calls.push(input);
        if (input?.startsWith('add element inet spa allow4') && fail)
          return Promise.resolve({ code: 1, stdout: '', stderr: 'Error: x' });
        return Promise.resolve({ code: 0, stdout: args.includes('list') ? listing : '', stderr: '' });
      },
    });
    await fw.init();
    const g = { source: '198.51.100.2', ports: [{ proto: 'tcp' as const, port: 22 }], timeoutSeconds: 30 };
    await assert.rejects(fw.grant(g));
    fail = false;
    await fw.grant(g);
    assert.ok(calls.at(-1)?.includes('returning4'), calls.at(-1));
  });

  test('the returning lane is refreshed with add, delete, add where the kernel needs it', async () => {
    const r = nftRunner(() => STEALTHY);
    const fw = createFirewall('nftables', STEALTH_OPTS, r);
    await fw.init();
    await fw.grant({ source: '2001:db8::2', ports: [{ proto: 'tcp', port: 22 }], timeoutSeconds: 30 });
    assert.match(
      r.calls.at(-1)?.input ?? '',
      /add element inet spa returning6 \{ 2001:db8::2 timeout 900s \}\ndelete element inet spa returning6 \{ 2001:db8::2 \}\nadd element inet spa returning6 \{ 2001:db8::2 timeout 900s \}\n$/,
    );
  });

  test('without a stealth port (UDP socket mode) a grant adds no returning element', async () => {
    const r = nftRunner();
    await createFirewall('nftables', OPTS, r).grant({
      source: '198.51.100.2',
      ports: [{ proto: 'tcp', port: 22 }],
      timeoutSeconds: 30,
    });
    assert.ok(!(r.calls[0]?.input ?? '').includes('returning'));
  });

  test('returning() restores the lane for what is left of each window, skipping non-addresses', async () => {
    const r = nftRunner(() => STEALTHY);
    const fw = createFirewall('nftables', STEALTH_OPTS, r);
    await fw.returning?.([
      { source: '198.51.100.2', seconds: 120.7 },
      { source: '1.2.3.4; flush ruleset', seconds: 100 },
      { source: '2001:db8::5', seconds: 5000 },
      { source: '198.51.100.3', seconds: 0.5 },
    ]);
    const script = r.calls[0]?.input ?? '';
    assert.match(script, /add element inet spa returning4 \{ 198\.51\.100\.2 timeout 120s \}/);
    assert.match(
      script,
      /add element inet spa returning6 \{ 2001:db8::5 timeout 900s \}/,
      'never beyond the window',
    );
    assert.ok(!script.includes('flush') && !script.includes('198.51.100.3'), script);
  });

  test('returning() outside pcap mode runs nothing', async () => {
    const r = nftRunner();
    await createFirewall('nftables', OPTS, r).returning?.([{ source: '198.51.100.2', seconds: 100 }]);
    assert.equal(r.calls.length, 0);
  });

  test('flush in pcap mode keeps the returning lane: it opens nothing', async () => {
    const r = nftRunner();
    await createFirewall('nftables', STEALTH_OPTS, r).flush();
    assert.equal(r.calls[0]?.input, 'flush set inet spa allow4\nflush set inet spa allow6\n');
  });

  test('without a stealth port (UDP socket mode) no rule drops the SPA port', () => {
    assert.ok(!INIT_SCRIPT.includes('dport 62201'));
  });

  test('init fails when the table read back lacks the drop of the SPA port', async () => {
    await assert.rejects(
      createFirewall('nftables', STEALTH_OPTS, nftRunner()).init(),
      (e) => isSpaError(e) && e.code === 'FW_ERROR',
    );
  });

  test('healthy is false when an admin deleted the drop of the SPA port', async () => {
    let listing = STEALTHY;
    const fw = createFirewall(
      'nftables',
      STEALTH_OPTS,
      nftRunner(() => listing),
    );
    await fw.init();
    assert.equal(await fw.healthy(), true);
    listing = nftListing({ ...BASE, stealth: 62202 });
    assert.equal(await fw.healthy(), false, 'another port');
    listing = LISTED;
    assert.equal(await fw.healthy(), false, 'rule removed');
  });
});
