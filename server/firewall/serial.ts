/**
 * One firewall change at a time per backend instance: iptables grants read the chain and then
 * edit it, so a sweep or a second grant in between would work on a stale listing.
 */
export class Serial {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}
