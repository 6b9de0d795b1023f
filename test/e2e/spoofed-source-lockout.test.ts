/**
 * Attack, end to end: the attacker namespace sends junk that carries our key id (it passes the
 * framing checks and costs a decryption attempt) with the client's own address as its source
 * (raw socket, scripts/bench-lib.ts FLOOD_C), at 10, 100 and 1,000 datagrams a second, while the
 * client knocks 10 times: every knock must open (pcap capture, nftables, default settings). Then
 * the same junk from random spoofed sources in 198.18.0.0/15 as fast as one core sends: the share
 * of knocks that open is printed, not asserted (`scripts/bench-flood.ts` measures it).
 *
 *   attacker (spoofs 198.51.100.2) ──┐
 *   client   198.51.100.2 ───────────┼── bridge ── server 198.51.100.1 (spad, pcap)
 *
 * Bounded: each flood lasts at most 6 s and rate × 6 datagrams (2,000,000 at full rate).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildFlooder, flooderArgs, type Probe, startProbe } from '../../scripts/bench-lib.js';
import { netnsUnavailable } from '../../scripts/netns.js';
import { type FaultRig, faultRig } from './faults-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'spa-e2e-spoof-'));
const flooder = buildFlooder(dir);
const skip = (await netnsUnavailable()) ?? (flooder ? null : 'gcc not found (the spoofing flooder is C)');
const SECONDS = 6;
const KNOCKS = 10;

describe('a lockout attempt by junk spoofing the client’s address', { skip: skip ?? false }, () => {
  let rig: FaultRig;
  let probe: Probe;
  let template: string;
  before(async () => {
    rig = await faultRig();
    probe = startProbe(rig.topo.client, rig.topo.server.ipv4);
    template = (await rig.knocks(1))[0] as string;
  });
  after(async () => {
    probe?.close();
    await rig?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Knocks KNOCKS times while the attacker floods as `spoof` at `pps`; the knocks that opened. */
  async function knocksDuring(spoof: string, pps: number): Promise<number> {
    const flood: ChildProcess = rig.topo.attacker.spawn(
      flooder as string,
      flooderArgs({
        to: rig.topo.server.ipv4,
        seconds: SECONDS,
        maxPackets: pps > 0 ? pps * SECONDS : 2_000_000,
        template,
        spoof,
        pps,
      }),
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    flood.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise<void>((r) => flood.once('exit', () => r()));
    const ms: string[] = [];
    let opened = 0;
    try {
      await new Promise((r) => setTimeout(r, 500));
      for (const k of await rig.knocks(KNOCKS)) {
        const t = await probe.measure(k);
        ms.push(t === null ? 'never' : t.toFixed(0));
        if (t !== null) opened++;
        await rig.control('fw-flush');
      }
      flood.kill('SIGTERM');
      await exited;
      const status = (await rig.control('status')) as { counters: Record<string, number> };
      console.log(
        `${spoof} at ${pps || 'full rate'}/s: ${opened}/${KNOCKS} opened (ms: ${ms.join(' ')}); flood ${out.trim()}; counters ${JSON.stringify(status.counters)}`,
      );
      return opened;
    } finally {
      flood.kill('SIGKILL');
      await rig.control('fw-flush');
    }
  }

  for (const pps of [10, 100, 1000]) {
    test(`${pps.toLocaleString('en')} junk datagrams a second from the client’s address: all ${KNOCKS} knocks open`, async () => {
      assert.equal(await knocksDuring(rig.topo.client.ipv4, pps), KNOCKS);
      assert.equal(await rig.ssh('attacker'), 'closed');
    });
  }

  test('junk from random spoofed sources as fast as one core sends: the share of knocks that open is printed', async () => {
    const opened = await knocksDuring('random', 0);
    console.log(`spoofed random sources at full rate: ${opened}/${KNOCKS} knocks opened`);
  });
});
