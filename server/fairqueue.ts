/**
 * The bounded fair queue in front of decryption (SPEC.md §7 step 4). It replaces hard per-source
 * token buckets, which an attacker could spend for a victim by spoofing the victim's address:
 * here nothing is refused while there is room, and work is only ever shared.
 *
 * - Items wait per source (an IPv4 address, or an IPv6 /64), grouped by prefix at two levels
 *   (IPv4 /16 and /24, IPv6 /32 and /48). Service is round robin at every level (deficit round
 *   robin with a quantum of one datagram: every datagram costs about the same before it is
 *   authenticated), so a prefix gets one turn per round whatever its volume, and inside it each
 *   narrower prefix, each source, and each source port of a source, in turn. Spoofing from a
 *   range of addresses then costs others at most a turn per round.
 * - Two lanes: sources that knocked validly recently (`trust()`) and everyone else. When both
 *   have work they take turns, so a flood from new or spoofed sources takes at most half of the
 *   work from a returning user, and a flood spoofing returning users' addresses at most half from
 *   everyone else.
 * - When the queue is full, the datagram dropped to make room is the oldest one of the busiest
 *   flow (source and port) in the busiest prefixes of the fuller lane, or the arriving one if it
 *   belongs to that very flow; a new source's first datagram is never the one shed.
 * Every operation is O(1) (a few map look-ups per level): rings and per-count buckets are
 * intrusive doubly linked lists.
 * Memory is bounded by the capacity (items) plus `maxTrusted` remembered sources.
 */
import { tryParseAddress, unmapV4 } from '../protocol/address.js';
import { QUEUE_CAPACITY, TRUSTED_SOURCE_MS, TRUSTED_SOURCES_MAX } from './limits.js';

export interface FairQueueOptions {
  /** Items held at most, across sources and lanes. */
  capacity: number;
  /** How long a source that knocked validly stays in the returning lane, ms. */
  trustMs?: number;
  /** Sources remembered as returning, at most (least recently trusted forgotten first). */
  maxTrusted?: number;
}

export const DEFAULT_FAIR_QUEUE: Required<FairQueueOptions> = {
  capacity: QUEUE_CAPACITY,
  trustMs: TRUSTED_SOURCE_MS,
  maxTrusted: TRUSTED_SOURCES_MAX,
};

/**
 * The scheduling keys of a datagram, widest first: IPv4 /16, /24, address; IPv6 /32, /48, /64
 * (IPv4-mapped IPv6 as IPv4); then the source port, so that junk spoofed from a victim's address
 * with other ports than the victim's does not queue ahead of the victim's knock. Unparseable
 * text is a group of its own.
 */
export function sourceKeys(source: string, port = 0): SourceKeys {
  if (!source.includes(':')) {
    const d1 = source.indexOf('.');
    const d2 = source.indexOf('.', d1 + 1);
    const d3 = source.lastIndexOf('.');
    if (d1 > 0 && d2 > d1 && d3 > d2)
      return [source.slice(0, d2), source.slice(0, d3), source, `${source}:${port}`];
  }
  const a = tryParseAddress(source);
  if (!a) return [`?`, `?`, `?${source}`, `?${source}:${port}`];
  const u = unmapV4(a);
  if (u.family === 4) {
    const b = u.bytes;
    const v4 = b.join('.');
    return [`${b[0]}.${b[1]}`, `${b[0]}.${b[1]}.${b[2]}`, v4, `${v4}:${port}`];
  }
  const hex = Buffer.from(u.bytes).toString('hex');
  const p64 = `${hex.slice(0, 16)}::/64`;
  return [`${hex.slice(0, 8)}::/32`, `${hex.slice(0, 12)}::/48`, p64, `${p64}:${port}`];
}

/** [wide prefix, narrow prefix, source, source and port]. */
export type SourceKeys = readonly [string, string, string, string];

/** A bucket of groups with the same item count, oldest to reach it first. */
interface Bucket<T> {
  head: Group<T> | null;
  tail: Group<T> | null;
}

/**
 * A prefix (children: narrower prefixes or sources) or a source and port (items). A group is
 * itself the link of two intrusive lists of its parent: the ring (service order) and the bucket
 * of its item count (finding the busiest). Containers are allocated only where used: a flood
 * from new sources creates and drops groups at its own rate, so allocation is the main cost.
 */
class Group<T> {
  count = 0;
  items: T[] | null = null;
  children: Map<string, Group<T>> | null = null;
  ringHead: Group<T> | null = null;
  ringTail: Group<T> | null = null;
  byCount: Map<number, Bucket<T>> | null = null;
  maxCount = 0;
  ringPrev: Group<T> | null = null;
  ringNext: Group<T> | null = null;
  countPrev: Group<T> | null = null;
  countNext: Group<T> | null = null;
  constructor(
    readonly key: string,
    readonly parent: Group<T> | null,
  ) {}

  ringPush(c: Group<T>): void {
    c.ringPrev = this.ringTail;
    c.ringNext = null;
    if (this.ringTail) this.ringTail.ringNext = c;
    else this.ringHead = c;
    this.ringTail = c;
  }

  ringRemove(c: Group<T>): void {
    if (c.ringPrev) c.ringPrev.ringNext = c.ringNext;
    else this.ringHead = c.ringNext;
    if (c.ringNext) c.ringNext.ringPrev = c.ringPrev;
    else this.ringTail = c.ringPrev;
    c.ringPrev = c.ringNext = null;
  }

  /** Moves child `c` from the bucket of count `from` to that of its current count. */
  rebucket(c: Group<T>, from: number): void {
    const byCount = (this.byCount ??= new Map());
    const old = from > 0 ? byCount.get(from) : undefined;
    if (old) {
      if (c.countPrev) c.countPrev.countNext = c.countNext;
      else old.head = c.countNext;
      if (c.countNext) c.countNext.countPrev = c.countPrev;
      else old.tail = c.countPrev;
      c.countPrev = c.countNext = null;
      if (!old.head) byCount.delete(from);
    }
    if (c.count > 0) {
      let b = byCount.get(c.count);
      if (!b) byCount.set(c.count, (b = { head: null, tail: null }));
      c.countPrev = b.tail;
      if (b.tail) b.tail.countNext = c;
      else b.head = c;
      b.tail = c;
      if (c.count > this.maxCount) this.maxCount = c.count;
    }
    while (this.maxCount > 0 && !byCount.has(this.maxCount)) this.maxCount--;
  }

  busiest(): Group<T> | null {
    return this.byCount?.get(this.maxCount)?.head ?? null;
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
      const children = (g.children ??= new Map());
      let c = children.get(k);
      if (!c) children.set(k, (c = new Group(k, g)));
      g = c;
    }
    (g.items ??= []).push(item);
    for (let c: Group<T> = g; c.parent; c = c.parent) {
      c.count++;
      if (c.count === 1) c.parent.ringPush(c);
      c.parent.rebucket(c, c.count - 1);
    }
    this.root.count++;
  }

  /** The next item in round-robin order. */
  shift(): T | undefined {
    let g = this.root;
    while (!g.items) {
      const next = g.ringHead;
      if (!next) return undefined;
      // its turn is taken: to the back of the ring
      if (next !== g.ringTail) {
        g.ringRemove(next);
        g.ringPush(next);
      }
      g = next;
    }
    return this.take(g);
  }

  /** True when `keys` name the flow shed() would take from. */
  isBusiest(keys: SourceKeys): boolean {
    let g: Group<T> | null = this.root;
    for (const k of keys) {
      g = g.busiest();
      if (!g || g.key !== k) return false;
    }
    return true;
  }

  /** The oldest item of the busiest source of the busiest prefix, level by level. */
  shed(): T | undefined {
    let g = this.root;
    while (!g.items) {
      const next = g.busiest();
      if (!next) return undefined;
      g = next;
    }
    return this.take(g);
  }

  private take(leaf: Group<T>): T | undefined {
    const item = leaf.items?.shift();
    for (let c: Group<T> = leaf; c.parent; c = c.parent) {
      c.count--;
      c.parent.rebucket(c, c.count + 1);
      if (c.count === 0) {
        c.parent.ringRemove(c);
        c.parent.children?.delete(c.key);
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
   * Queues `item` from `source` (and source `port`). When the queue was full, returns the item
   * shed to make room, else undefined: the oldest of the busiest flow, or `item` itself when its
   * own flow (source and port) is that one (the same flow loses one datagram either way, and a
   * flood then costs no queue work). `now` (ms) decides whether the source is returning.
   */
  push(item: T, source: string, now: number, port = 0): T | undefined {
    const keys = sourceKeys(source, port);
    const lane = this.laneOf(keys, now);
    let shed: T | undefined;
    if (this.size >= this.opts.capacity) {
      const fuller = this.fuller();
      if (fuller === lane && fuller.isBusiest(keys)) return item;
      shed = fuller.shed();
    }
    lane.push(item, keys);
    return shed;
  }

  /** False when push() would shed the item itself (the queue is full and its flow the busiest). */
  admits(source: string, now: number, port = 0): boolean {
    if (this.size < this.opts.capacity) return true;
    const keys = sourceKeys(source, port);
    const lane = this.laneOf(keys, now);
    return !(this.fuller() === lane && lane.isBusiest(keys));
  }

  private laneOf(keys: SourceKeys, now: number): Lane<T> {
    const until = this.trusted.get(keys[2]);
    return until !== undefined && until > now ? this.returning : this.others;
  }

  private fuller(): Lane<T> {
    return this.returning.size > this.others.size ? this.returning : this.others;
  }

  /** The next item to work on: lanes take turns, round robin inside each. */
  shift(): T | undefined {
    const first = this.returningTurn ? this.returning : this.others;
    const second = this.returningTurn ? this.others : this.returning;
    const item = first.shift() ?? second.shift();
    if (this.returning.size > 0 && this.others.size > 0) this.returningTurn = !this.returningTurn;
    return item;
  }

  /** Whether `source` is in the returning lane at `now`. */
  isTrusted(source: string, now: number): boolean {
    return this.laneOf(sourceKeys(source), now) === this.returning;
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
