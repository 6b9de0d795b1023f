/**
 * One gateway's side of the fleet (`--cluster`, SPEC.md §7 step 13): the monitor holds the link to
 * Redis (the verifier never reaches the network), the shared replay claim and the keyring sync.
 * spad starts whether Redis answers or not (cluster_fail decides about knocks meanwhile); a newer
 * signed keyring in Redis becomes keyring.json before it is loaded.
 */
import type * as openpgp from 'openpgp';
import type { Audit } from '../audit.js';
import { openLink } from './connection.js';
import { KeyringSync, type SyncResult } from './keyring.js';
import { SharedReplay } from './replay.js';
import type { ClusterSettings } from './settings.js';

export interface ClusterMember {
  readonly shared: SharedReplay;
  readonly keyringSync: KeyringSync;
  /** For `spad status`. */
  status(): Record<string, unknown>;
  close(): Promise<void>;
}

export async function joinCluster(
  settings: ClusterSettings,
  stateDir: string,
  serverKey: openpgp.PublicKey,
  audit: Audit,
  onKeyring: (r: SyncResult) => void,
): Promise<ClusterMember> {
  const link = await openLink(settings, (st) =>
    audit.log('cluster_state', {
      detail: `redis ${st.url} ${st.state}${st.state === 'up' ? '' : st.lastError ? `: ${st.lastError}` : ''}`,
    }),
  );
  const { hostname } = await import('node:os');
  const shared = new SharedReplay(link, hostname());
  const keyringSync = new KeyringSync(link, stateDir, serverKey, onKeyring);
  await keyringSync.start();
  return {
    shared,
    keyringSync,
    status: () => ({
      ...link.status,
      fail: settings.fail,
      timeoutMs: settings.timeoutMs,
      replay: { ...shared.counters },
      keyring: keyringSync.status,
    }),
    async close() {
      await keyringSync.close();
      await link.close();
    },
  };
}
