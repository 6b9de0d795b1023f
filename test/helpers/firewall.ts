/**
 * A firewall that changes nothing and records every call that would: what the in-memory pipeline
 * and monitor tests (test/unit/, test/security/) assert against. "The firewall did not change"
 * means no grant or flush was recorded.
 */
import type { Firewall, GrantRequest } from '../../server/firewall/types.js';

export type FirewallCall = { op: 'grant'; grant: GrantRequest } | { op: 'flush' };

export interface RecordingFirewall extends Firewall {
  /** Every changing call, in order. */
  readonly calls: FirewallCall[];
  /** The grants alone, in order. */
  readonly grants: GrantRequest[];
}

export function recordingFirewall(): RecordingFirewall {
  const calls: FirewallCall[] = [];
  const grants: GrantRequest[] = [];
  return {
    backend: 'nftables',
    calls,
    grants,
    init: async () => {},
    grant: async (g) => {
      calls.push({ op: 'grant', grant: g });
      grants.push(g);
    },
    list: async () => [],
    flush: async () => {
      calls.push({ op: 'flush' });
    },
    sweep: async () => 0,
    healthy: async () => true,
    shutdown: async () => {},
  };
}
