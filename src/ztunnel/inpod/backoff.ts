/**
 * The reconnect schedule to the node agent (upstream ztunnel: 10 ms doubling, capped at 15 s, reset
 * once a connection reached ready). No jitter is added on top, so no wait ever exceeds the cap.
 */
export class ReconnectBackoff {
  #next: number;

  constructor(
    readonly initialMs = 10,
    readonly maxMs = 15_000,
  ) {
    this.#next = Math.min(initialMs, maxMs);
  }

  /** The wait before the next attempt; each call doubles the following one, up to the cap. */
  next(): number {
    const wait = this.#next;
    this.#next = Math.min(wait * 2, this.maxMs);
    return wait;
  }

  /** A connection reached ready: the next failure starts from the initial wait again. */
  reset(): void {
    this.#next = Math.min(this.initialMs, this.maxMs);
  }
}
