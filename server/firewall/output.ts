/**
 * Reading what nft and iptables print, shared by the backends and the forwarders: the first
 * line of an error for our own messages (bounded, so a tool cannot flood the audit log), and the
 * items of an `nft -j list table` listing, which parse as JSON or throw FW_ERROR.
 */
import { FirewallError } from './types.js';

export type Json = Record<string, unknown>;

export function isObj(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** The first non-blank line, trimmed, at most 200 characters. */
export function firstLine(s: string): string {
  return (s.split('\n').find((l) => l.trim() !== '') ?? '').trim().slice(0, 200);
}

/** The `nftables` array of an `nft -j` listing. */
export function nftItems(json: string): unknown[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (cause) {
    throw new FirewallError('nft: listing is not JSON', { cause });
  }
  const items = isObj(doc) && Array.isArray(doc.nftables) ? (doc.nftables as unknown[]) : null;
  if (!items) throw new FirewallError('nft: listing has no nftables array');
  return items;
}
