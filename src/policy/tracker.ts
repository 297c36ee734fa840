/**
 * Inbound connections that passed authorization, kept so a policy update can re-check them: when the
 * store changes, every tracked connection is evaluated again and the ones now denied are closed.
 */
import type { WorkloadStore } from '../discovery/store.js';
import type { Authorization } from '../discovery/types.js';
import { authorize, type ConnectionAttributes } from './authorize.js';

export interface TrackedConnection {
  attributes: ConnectionAttributes;
  /** The policies that apply to the connection's destination, read at re-check time. */
  policies(): Authorization[];
  /** Closes the connection; `reason` is the access-log error. */
  close(reason: string): void;
}

export const POLICY_CHANGE_CLOSE = 'connection closed due to policy change';

export class ConnectionTracker {
  readonly #connections = new Set<TrackedConnection>();
  readonly #store: WorkloadStore;
  readonly #onChange = (): void => {
    this.recheck();
  };

  constructor(store: WorkloadStore) {
    this.#store = store;
    store.on('change', this.#onChange);
  }

  /** Tracks `conn` until the returned function is called. */
  track(conn: TrackedConnection): () => void {
    this.#connections.add(conn);
    return () => this.#connections.delete(conn);
  }

  get size(): number {
    return this.#connections.size;
  }

  /** Closes every tracked connection the current policies deny; returns how many. */
  recheck(): number {
    let closed = 0;
    for (const conn of [...this.#connections]) {
      const verdict = authorize(conn.policies(), conn.attributes);
      if (verdict.allowed) continue;
      this.#connections.delete(conn);
      conn.close(`${POLICY_CHANGE_CLOSE}: ${verdict.reason}`);
      closed++;
    }
    return closed;
  }

  close(): void {
    this.#store.off('change', this.#onChange);
    this.#connections.clear();
  }
}
