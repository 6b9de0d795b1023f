/**
 * A FirewallExec that runs nothing: it records every call (program, argv, stdin) and answers
 * from a function the test supplies. Also builds `nft -j list table` and `iptables -S` output in
 * the exact shapes nftables 1.0.6 and iptables 1.8.9 print (copied from real listings).
 */
import type { CommandResult, FirewallExec } from '../../server/firewall/types.js';

export interface Call {
  cmd: string;
  args: string[];
  input: string | undefined;
}

export type Responder = (call: Call, index: number) => Partial<CommandResult> | undefined;

export class FakeRunner implements FirewallExec {
  readonly calls: Call[] = [];
  constructor(private readonly respond: Responder = () => undefined) {}

  async run(cmd: string, args: readonly string[], input?: string): Promise<CommandResult> {
    const call = { cmd, args: [...args], input };
    this.calls.push(call);
    const r = this.respond(call, this.calls.length - 1) ?? {};
    return { code: r.code ?? 0, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }
}

export const OK = { code: 0 };
export const NFT_NO_TABLE = {
  code: 1,
  stderr: 'Error: No such file or directory\nlist table inet spa\n                ^^^\n',
};

type Elem = { source: string; proto: string; port: number; timeout?: number; expires?: number };

const accept = { accept: null };
const payload = (protocol: string, field: string) => ({ payload: { protocol, field } });
/** nft prints a one-element anonymous set as the bare element. */
const setOf = (items: unknown[]) => (items.length === 1 ? items[0] : { set: items });

function rulesFor(
  protect: [string, number][],
  always4: [string, number][],
  always6: [string, number][],
  stealth: number | undefined,
): unknown[][] {
  const rules: unknown[][] = [
    ...(stealth === undefined
      ? []
      : [
          ...(['ip', 'ip6'] as const).map((p) => {
            const f = p === 'ip' ? '4' : '6';
            return [
              { match: { op: '==', left: payload('udp', 'dport'), right: stealth } },
              { match: { op: '==', left: payload(p, 'saddr'), right: `@returning${f}` } },
              {
                set: {
                  op: 'add',
                  elem: payload(p, 'saddr'),
                  set: `@returning_rate${f}`,
                  stmt: [{ limit: { rate: 10, burst: 10, per: 'second' } }],
                },
              },
              accept,
            ];
          }),
          [{ match: { op: '==', left: payload('udp', 'dport'), right: stealth } }, { drop: null }],
        ]),
    [{ match: { op: 'in', left: { ct: { key: 'state' } }, right: ['established', 'related'] } }, accept],
    [{ match: { op: '!=', left: { meta: { key: 'l4proto' } }, right: { set: ['tcp', 'udp'] } } }, accept],
    [
      {
        match: {
          op: '!=',
          left: { concat: [{ meta: { key: 'l4proto' } }, payload('th', 'dport')] },
          right: setOf(protect.map(([p, n]) => ({ concat: [p, n] }))),
        },
      },
      accept,
    ],
  ];
  for (const p of ['ip', 'ip6']) {
    const left = { concat: [payload(p, 'saddr'), { meta: { key: 'l4proto' } }, payload('th', 'dport')] };
    rules.push([{ match: { op: '==', left, right: p === 'ip' ? '@allow4' : '@allow6' } }, accept]);
  }
  for (const [p, list, max] of [
    ['ip', always4, 32],
    ['ip6', always6, 128],
  ] as const) {
    if (list.length === 0) continue;
    const right = setOf(list.map(([addr, len]) => (len === max ? addr : { prefix: { addr, len } })));
    rules.push([{ match: { op: '==', left: payload(p, 'saddr'), right } }, accept]);
  }
  rules.push([{ counter: 'dropped' }, { drop: null }]);
  return rules;
}

export interface NftListingOptions {
  name?: string;
  allow4?: Elem[];
  allow6?: Elem[];
  protect?: [string, number][];
  always4?: [string, number][];
  always6?: [string, number][];
  /** The SPA port our chain drops first (pcap mode). */
  stealth?: number;
  /** Keep only the first n rules. */
  rules?: number;
  /** Seconds left on the refresh-probe element; no probe set when undefined. */
  probe?: number;
  packets?: number;
  handleBase?: number;
  /** Leave set contents out, as `nft -t` does. */
  terse?: boolean;
}

/** `nft -j list table inet <name>` as nftables 1.0.6 prints it. */
export function nftListing(o: NftListingOptions = {}): string {
  const table = o.name ?? 'spa';
  const h = o.handleBase ?? 1;
  const elems = (list: Elem[] | undefined) =>
    (list ?? []).map((e) =>
      e.timeout === undefined
        ? { concat: [e.source, e.proto, e.port] }
        : {
            elem: {
              val: { concat: [e.source, e.proto, e.port] },
              timeout: e.timeout,
              expires: e.expires ?? e.timeout,
            },
          },
    );
  const withElems = (base: Record<string, unknown>, elem: unknown[]) =>
    elem.length > 0 && !o.terse ? { ...base, elem } : base;
  const allowType = (a: string) => [a, 'inet_proto', 'inet_service'];
  const items: unknown[] = [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { table: { family: 'inet', name: table, handle: h } },
    {
      counter: {
        family: 'inet',
        name: 'dropped',
        table,
        handle: h + 6,
        packets: o.packets ?? 0,
        bytes: (o.packets ?? 0) * 60,
      },
    },
    {
      set: withElems(
        {
          family: 'inet',
          name: 'allow4',
          table,
          type: allowType('ipv4_addr'),
          handle: h,
          flags: ['timeout'],
        },
        elems(o.allow4),
      ),
    },
    {
      set: withElems(
        {
          family: 'inet',
          name: 'allow6',
          table,
          type: allowType('ipv6_addr'),
          handle: h + 1,
          flags: ['timeout'],
        },
        elems(o.allow6),
      ),
    },
    ...(o.probe === undefined
      ? []
      : [
          {
            set: withElems(
              { family: 'inet', name: 'probe', table, type: 'ipv4_addr', handle: h + 5, flags: ['timeout'] },
              [{ elem: { val: '192.0.2.1', timeout: 7200, expires: o.probe } }],
            ),
          },
        ]),
    {
      chain: {
        family: 'inet',
        table,
        name: 'input',
        handle: h + 6,
        type: 'filter',
        hook: 'input',
        prio: -10,
        policy: 'accept',
      },
    },
    ...rulesFor(o.protect ?? [['tcp', 22]], o.always4 ?? [], o.always6 ?? [], o.stealth)
      .slice(0, o.rules)
      .map((expr, i) => ({ rule: { family: 'inet', table, chain: 'input', handle: h + 20 + i, expr } })),
  ];
  return JSON.stringify({ nftables: items });
}

/** `iptables -S` of the filter table with our chain. */
export function iptListing(o: {
  chain?: string;
  input?: string[];
  rules?: string[];
  chainExists?: boolean;
}): string {
  const chain = o.chain ?? 'SPA_INPUT';
  const lines = ['-P INPUT ACCEPT', '-P FORWARD ACCEPT', '-P OUTPUT ACCEPT'];
  if (o.chainExists ?? true) lines.push(`-N ${chain}`);
  lines.push(...(o.input ?? []), ...(o.rules ?? []));
  return `${lines.join('\n')}\n`;
}
