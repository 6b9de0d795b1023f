/**
 * The bounded fair queue in front of decryption (SPEC.md §7 step 4). It replaces hard per-source
 * token buckets, which an attacker could spend for a victim by spoofing the victim's address:
 * here nothing is refused while there is room, and work is only ever shared.
 *
 * - Items wait per source (an IPv4 address, or an IPv6 /64), grouped by prefix at two levels
 *   (IPv4 /16 and /24, IPv6 /32 and /48). Service is round robin at every level (deficit round
 *   robin with a quantum of one datagram: every datagram costs about the same before it is
 *   authenticated), so a prefix gets one turn per round whatever its volume, and inside it each
 *   narrower prefix, and each source, in turn. Spoofing from a range of addresses then costs
 *   others at most a turn per round.
 * - Two lanes: sources that knocked validly recently (`trust()`) and everyone else. When both
 *   have work they take turns, so a flood from new or spoofed sources takes at most half of the
 *   work from a returning user, and a flood spoofing returning users' addresses at most half from
 *   everyone else.
 * - When the queue is full, the datagram dropped to make room is the oldest one of the busiest
 *   source in the busiest prefix of the fuller lane; an arriving datagram is always queued, so a
 *   new source's first datagram is never the one shed.
 * Every operation is O(1): rings and per-count buckets are intrusive doubly linked lists.
 * Memory is bounded by the capacity (items) plus `maxTrusted` remembered sources.
 */
import { tryParseAddress, unmapV4 } from '../protocol/address.js';

export interface FairQueueOptions {
  /** Items held at most, across sources and lanes. */
  capacity: number;
  /** How long a source that knocked validly stays in the returning lane, ms. */
  trustMs?: number;
  /** Sources remembered as returning, at most (least recently trusted forgotten first). */
  maxTrusted?: number;
}

export const DEFAULT_FAIR_QUEUE: Required<FairQueueOptions> = {
  capacity: 1024,
  trustMs: 15 * 60_000,
  maxTrusted: 4096,
};

/**
 * The scheduling keys of a source address, widest first: IPv4 /16, /24, address; IPv6 /32, /48,
 * /64 (IPv4-mapped IPv6 as IPv4). Unparseable text is a group of its own.
 */
export function sourceKeys(source: string): SourceKeys {
  if (!source.includes(':')) {
    const d1 = source.indexOf('.');
    const d2 = source.indexOf('.', d1 + 1);
    const d3 = source.lastIndexOf('.');
    if (d1 > 0 && d2 > d1 && d3 > d2) return [source.slice(0, d2), source.slice(0, d3), source];
  }
  const a = tryParseAddress(source);
  if (!a) return [`?`, `?`, `?${source}`];
  const u = unmapV4(a);
  if (u.family === 4) {
    const b = u.bytes;
    return [`${b[0]}.${b[1]}`, `${b[0]}.${b[1]}.${b[2]}`, b.join('.')];
  }
  const hex = Buffer.from(u.bytes).toString('hex');
  return [`${hex.slice(0, 8)}::/32`, `${hex.slice(0, 12)}::/48`, `${hex.slice(0, 16)}::/64`];
}

export type SourceKeys = readonly [string, string, string];

class Link<T> {
  prev: Link<T> | null = null;
  next: Link<T> | null = null;
  constructor(readonly value: T) {}
}

class List<T> {
  head: Link<T> | null = null;
  tail: Link<T> | null = null;
  size = 0;

  push(value: T): Link<T> {
    const l = new Link(value);
    l.prev = this.tail;
    if (this.tail) this.tail.next = l;
    else this.head = l;
    this.tail = l;
    this.size++;
    return l;
  }

  remove(l: Link<T>): void {
    if (l.prev) l.prev.next = l.next;
    else this.head = l.next;
    if (l.next) l.next.prev = l.prev;
    else this.tail = l.prev;
    l.prev = l.next = null;
    this.size--;
  }
}

/** A prefix (children: narrower prefixes or sources) or a source (items). */
class Group<T> {
  count = 0;
  readonly children = new Map<string, Group<T>>();
  readonly items: T[] = [];
  /** Children with items, in service order. */
  readonly ring = new List<Group<T>>();
  /** Children by item count, for finding the busiest. */
  readonly byCount = new Map<number, List<Group<T>>>();
  maxCount = 0;
  ringLink: Link<Group<T>> | null = null;
  countLink: Link<Group<T>> | null = null;
  constructor(
    readonly key: string,
    readonly parent: Group<T> | null,
  ) {}

  /** Moves child `c` from the bucket of count `from` to that of its current count. */
  rebucket(c: Group<T>, from: number): void {
    if (c.countLink) {
      const b = this.byCount.get(from);
      b?.remove(c.countLink);
      if (b && b.size === 0) this.byCount.delete(from);
      c.countLink = null;
    }
    if (c.count > 0) {
      let b = this.byCount.get(c.count);
      if (!b) this.byCount.set(c.count, (b = new List()));
      c.countLink = b.push(c);
      if (c.count > this.maxCount) this.maxCount = c.count;
    }
    while (this.maxCount > 0 && !this.byCount.has(this.maxCount)) this.maxCount--;
  }

  busiest(): Group<T> | undefined {
    return this.byCount.get(this.maxCount)?.head?.value;
  }
}

/** One lane: a tree of FIFOs, one level per key of `sourceKeys`. */
class Lane<T> {
  readonly root = new Group<T>('', null);

  get size(): number {
    return this.root.count;
  }

  push(item: T, keys: SourceKeys): void {
    let g = this.root;
    for (const k of keys) {
      let c = g.children.get(k);
      if (!c) g.children.set(k, (c = new Group(k, g)));
      g = c;
    }
    g.items.push(item);
    for (let c: Group<T> = g; c.parent; c = c.parent) {
      c.count++;
      if (c.count === 1) c.ringLink = c.parent.ring.push(c);
      c.parent.rebucket(c, c.count - 1);
    }
    this.root.count++;
  }

  /** The next item in round-robin order. */
  shift(): T | undefined {
    let g = this.root;
    while (g.items.length === 0) {
      const next = g.ring.head?.value;
      if (!next) return undefined;
      // its turn is taken: to the back of the ring
      if (next.ringLink && g.ring.size > 1) {
        g.ring.remove(next.ringLink);
        next.ringLink = g.ring.push(next);
      }
      g = next;
    }
    return this.take(g);
  }

  /** The oldest item of the busiest source of the busiest prefix, level by level. */
  shed(): T | undefined {
    let g = this.root;
    while (g.items.length === 0) {
      const next = g.busiest();
      if (!next) return undefined;
      g = next;
    }
    return this.take(g);
  }

  private take(leaf: Group<T>): T | undefined {
    const item = leaf.items.shift();
    for (let c: Group<T> = leaf; c.parent; c = c.parent) {
      c.count--;
      c.parent.rebucket(c, c.count + 1);
      if (c.count === 0) {
        if (c.ringLink) c.parent.ring.remove(c.ringLink);
        c.ringLink = null;
        c.parent.children.delete(c.key);
      }
    }
    this.root.count--;
    return item;
  }
}

export class FairQueue<T> {
  private readonly opts: Required<FairQueueOptions>;
  private readonly returning = new Lane<T>();
  private readonly others = new Lane<T>();
  /** Source key → trusted until (ms); insertion order is trust order. */
  private readonly trusted = new Map<string, number>();
  private returningTurn = true;

  constructor(opts: Partial<FairQueueOptions> = {}) {
    this.opts = { ...DEFAULT_FAIR_QUEUE, ...opts };
  }

  get size(): number {
    return this.returning.size + this.others.size;
  }

  get capacity(): number {
    return this.opts.capacity;
  }

  /**
   * Queues `item` from `source`. When the queue was full, returns the item shed to make room
   * (never `item` itself); else undefined. `now` (ms) decides whether the source is returning.
   */
  push(item: T, source: string, now: number): T | undefined {
    const keys = sourceKeys(source);
    let shed: T | undefined;
    if (this.size >= this.opts.capacity) {
      const fuller = this.returning.size > this.others.size ? this.returning : this.others;
      shed = fuller.shed();
    }
    const until = this.trusted.get(keys[2]);
    (until !== undefined && until > now ? this.returning : this.others).push(item, keys);
    return shed;
  }

  /** The next item to work on: lanes take turns, round robin inside each. */
  shift(): T | undefined {
    const first = this.returningTurn ? this.returning : this.others;
    const second = this.returningTurn ? this.others : this.returning;
    const item = first.shift() ?? second.shift();
    if (this.returning.size > 0 && this.others.size > 0) this.returningTurn = !this.returningTurn;
    return item;
  }

  /** Puts `source` in the returning lane (for datagrams queued from now on) until now + trustMs. */
  trust(source: string, now: number): void {
    const key = sourceKeys(source)[2];
    this.trusted.delete(key);
    this.trusted.set(key, now + this.opts.trustMs);
    if (this.trusted.size > this.opts.maxTrusted) {
      const oldest = this.trusted.keys().next().value;
      if (oldest !== undefined) this.trusted.delete(oldest);
    }
  }

  /** Sources remembered as returning. */
  get trustedSources(): number {
    return this.trusted.size;
  }
}
