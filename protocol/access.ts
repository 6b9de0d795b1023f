/**
 * Access requests: `tcp/22,udp/53` (SPEC.md §4.5). Port ranges are refused on purpose: a knock
 * names each port it wants, and a policy lists each port it allows, so what is opened is always
 * exactly what was asked for and allowed. Protocol names are lowercase `tcp` or `udp`.
 */
import { ConfigError } from './errors.js';
import { ACCESS_MAX_ENTRIES } from './limits.js';

export type Proto = 'tcp' | 'udp';

export interface PortSpec {
  readonly proto: Proto;
  readonly port: number;
}

export const PROTO_NUMBER: Readonly<Record<Proto, number>> = { tcp: 6, udp: 17 };

export function protoFromNumber(n: number): Proto | null {
  return n === 6 ? 'tcp' : n === 17 ? 'udp' : null;
}

export function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** One `proto/port` item. */
export function parsePortSpec(text: string, field = 'access'): PortSpec {
  const m = /^(tcp|udp)\/([0-9]{1,5})$/.exec(text.trim());
  if (!m) {
    const hint =
      text.includes('-') || text.includes(':') ? ' (port ranges are not supported: list each port)' : '';
    throw new ConfigError(
      'ACCESS_SPEC',
      `${field}: expected proto/port like tcp/22, got '${text.trim().slice(0, 40)}'${hint}`,
      {
        field,
      },
    );
  }
  const port = Number(m[2]);
  if (!isPort(port) || (m[2] ?? '').startsWith('0')) {
    throw new ConfigError('ACCESS_SPEC', `${field}: port must be 1..65535 without leading zeros`, { field });
  }
  return { proto: m[1] as Proto, port };
}

/** A comma-separated list; duplicates are removed, order kept. At least one entry. */
export function parseAccessList(text: string, field = 'access', max = ACCESS_MAX_ENTRIES): PortSpec[] {
  const items = text.split(',').filter((s) => s.trim() !== '');
  if (items.length === 0)
    throw new ConfigError('ACCESS_SPEC', `${field}: empty (expected e.g. tcp/22)`, { field });
  const out: PortSpec[] = [];
  for (const item of items) {
    const p = parsePortSpec(item, field);
    if (!out.some((q) => q.proto === p.proto && q.port === p.port)) out.push(p);
  }
  if (out.length > max) {
    throw new ConfigError(
      'LIMIT_EXCEEDED',
      `${field}: at most ${max} proto/port entries, got ${out.length}`,
      { field },
    );
  }
  return out;
}

export function formatPortSpec(p: PortSpec): string {
  return `${p.proto}/${p.port}`;
}

export function formatAccessList(list: readonly PortSpec[]): string {
  return list.map(formatPortSpec).join(',');
}

export function portSpecEquals(a: PortSpec, b: PortSpec): boolean {
  return a.proto === b.proto && a.port === b.port;
}
