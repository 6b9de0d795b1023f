/**
 * A CommandRunner that runs nothing: it records every call (program, argv, stdin) and answers
 * from a function the test supplies. Also builds `nft -j list table` and `iptables -S` output in
 * the exact shapes nftables 1.0.6 and iptables 1.8.9 print (copied from real listings).
 */
import type { CommandResult, CommandRunner } from '../../server/firewall/types.js';

export interface Call {
  cmd: string;
  args: string[];
  input: string | undefined;
}

export type Responder = (call: Call, index: number) => Partial<CommandResult> | undefined;

export class FakeRunner implements CommandRunner {
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

const RULES: unknown[][] = [
  [
    { match: { op: 'in', left: { ct: { key: 'state' } }, right: ['established', 'related'] } },
    { accept: null },
  ],
  [
    { match: { op: '!=', left: { meta: { key: 'l4proto' } }, right: { set: ['tcp', 'udp'] } } },
    { accept: null },
  ],
  [
    {
      match: {
        op: '!=',
        left: { concat: [{ meta: { key: 'l4proto' } }, { payload: { protocol: 'th', field: 'dport' } }] },
        right: '@protect',
      },
    },
    { accept: null },
  ],
  ...(['ip', 'ip6'] as const).map((p) => [
    {
      match: {
        op: '==',
        left: {
          concat: [
            { payload: { protocol: p, field: 'saddr' } },
            { meta: { key: 'l4proto' } },
            { payload: { protocol: 'th', field: 'dport' } },
          ],
        },
        right: p === 'ip' ? '@allow4' : '@allow6',
      },
    },
    { accept: null },
  ]),
  ...(['ip', 'ip6'] as const).map((p) => [
    {
      match: {
        op: '==',
        left: { payload: { protocol: p, field: 'saddr' } },
        right: p === 'ip' ? '@always4' : '@always6',
      },
    },
    { accept: null },
  ]),
  [{ counter: 'dropped' }, { drop: null }],
];

export interface NftListingOptions {
  name?: string;
  allow4?: Elem[];
  allow6?: Elem[];
  protect?: [string, number][];
  always4?: [string, number][];
  rules?: number;
  /** Seconds left on the refresh-probe element; no probe set when undefined. */
  probe?: number;
  packets?: number;
  handleBase?: number;
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
    elem.length > 0 ? { ...base, elem } : base;
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
          type: ['ipv4_addr', 'inet_proto', 'inet_service'],
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
          type: ['ipv6_addr', 'inet_proto', 'inet_service'],
          handle: h + 1,
          flags: ['timeout'],
        },
        elems(o.allow6),
      ),
    },
    {
      set: withElems(
        { family: 'inet', name: 'protect', table, type: ['inet_proto', 'inet_service'], handle: h + 2 },
        (o.protect ?? [['tcp', 22]]).map(([p, n]) => ({ concat: [p, n] })),
      ),
    },
    {
      set: withElems(
        { family: 'inet', name: 'always4', table, type: 'ipv4_addr', handle: h + 3, flags: ['interval'] },
        (o.always4 ?? []).map(([addr, len]) => ({ prefix: { addr, len } })),
      ),
    },
    {
      set: { family: 'inet', name: 'always6', table, type: 'ipv6_addr', handle: h + 4, flags: ['interval'] },
    },
    ...(o.probe === undefined
      ? []
      : [
          {
            set: {
              family: 'inet',
              name: 'probe',
              table,
              type: 'ipv4_addr',
              handle: h + 5,
              flags: ['timeout'],
              elem: [{ elem: { val: '192.0.2.1', timeout: 7200, expires: o.probe } }],
            },
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
    ...RULES.slice(0, o.rules ?? RULES.length).map((expr, i) => ({
      rule: { family: 'inet', table, chain: 'input', handle: h + 20 + i, expr },
    })),
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
