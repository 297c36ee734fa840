/**
 * The agent's one work queue (istio-cni `informers.go`): every informer event is an item of its
 * own (no key dedup), handled by one worker in order. A handler that throws gets the item back
 * after a per-item exponential backoff (5 ms doubling to 5 s, forever), also held to a 10/s,
 * burst-100 token bucket so a flood of failures cannot spin.
 */

import { errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';

const log = logger('ambit::agent::queue');

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  qps?: number;
  burst?: number;
}

/** Delay before attempt `failures + 1` of an item that failed `failures` times (>= 1). */
export function backoffDelay(failures: number, baseMs = 5, maxMs = 5000): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 30));
}

export class WorkQueue<T extends object> {
  readonly #handler: (item: T) => Promise<void>;
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #qps: number;
  readonly #burst: number;
  #tokens: number;
  #tokensAt = Date.now();
  readonly #items: T[] = [];
  readonly #failures = new Map<T, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #running = false;
  #busy = false;
  #idleWaiters: (() => void)[] = [];

  constructor(handler: (item: T) => Promise<void>, options: WorkQueueOptions = {}) {
    this.#handler = handler;
    this.#baseMs = options.baseDelayMs ?? 5;
    this.#maxMs = options.maxDelayMs ?? 5000;
    this.#qps = options.qps ?? 10;
    this.#burst = options.burst ?? 100;
    this.#tokens = this.#burst;
  }

  get length(): number {
    return this.#items.length;
  }

  /** Items waiting for a retry timer. */
  get retrying(): number {
    return this.#timers.size;
  }

  add(item: T): void {
    this.#items.push(item);
    this.#pump();
  }

  /** Nothing is handled before start (the informers fill the queue while caches sync). */
  start(): void {
    this.#running = true;
    this.#pump();
  }

  /** Stops handling and drops pending retries; an item being handled finishes. */
  stop(): void {
    this.#running = false;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#items.length = 0;
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** Resolves when no item is queued, being handled, or waiting for a retry. */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #isIdle(): boolean {
    return this.#items.length === 0 && !this.#busy && this.#timers.size === 0;
  }

  #pump(): void {
    if (!this.#running || this.#busy) return;
    const item = this.#items.shift();
    if (item === undefined) {
      if (this.#isIdle()) for (const w of this.#idleWaiters.splice(0)) w();
      return;
    }
    this.#busy = true;
    this.#handler(item).then(
      () => {
        this.#failures.delete(item);
        this.#done();
      },
      (err) => {
        if (!this.#running) return this.#done();
        const failures = (this.#failures.get(item) ?? 0) + 1;
        this.#failures.set(item, failures);
        const delay = Math.max(backoffDelay(failures, this.#baseMs, this.#maxMs), this.#bucketDelay());
        log.debug('retrying event', { attempt: failures, delayMs: delay, error: errorMessage(err) });
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          if (this.#running) this.add(item);
        }, delay);
        this.#timers.add(timer);
        this.#done();
      },
    );
  }

  #done(): void {
    this.#busy = false;
    this.#pump();
  }

  /** Takes a token for a retry; returns how long the retry must wait for it. */
  #bucketDelay(): number {
    const now = Date.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#tokensAt) / 1000) * this.#qps);
    this.#tokensAt = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#qps) * 1000);
  }
}
