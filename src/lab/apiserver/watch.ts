/**
 * One watch stream: newline-delimited `{"type","object"}` events for one resource, filtered by
 * namespace and selectors. An object that stops (starts) matching a selector arrives as DELETED
 * (ADDED), as from a real API server. Too old a start version is an ERROR event with a 410 Status.
 */
import type { ServerResponse } from 'node:http';
import type { KObject } from './objects.js';
import { apiVersionOf, type ResourceType } from './resources.js';
import { type FieldRequirement, type LabelRequirement, matchesFields, matchesLabels } from './selectors.js';
import { StatusError } from './status.js';
import type { Store, StoredEvent } from './store.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchOptions {
  resource: ResourceType;
  namespace: string | undefined;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
  /** '' or '0': start with the current state as ADDED events. */
  resourceVersion: string;
  allowBookmarks: boolean;
  sendInitialEvents: boolean | undefined;
  timeoutMs: number;
  bookmarkIntervalMs: number;
  /** Re-shapes each object (kubectl's Table watches). */
  render: (o: KObject) => unknown;
}

/** A slow reader that lets this much pile up is dropped; its client relists and rewatches. */
const MAX_BUFFERED = 16 * 1024 * 1024;

export class WatchStream {
  private unsubscribe: (() => void) | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly res: ServerResponse,
    private readonly opts: WatchOptions,
    private readonly onClose: (w: WatchStream) => void,
  ) {}

  start(): void {
    const { store, opts, res } = this;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    res.on('close', () => this.close());
    const rv = opts.resourceVersion;
    let replay: StoredEvent[] = [];
    if (rv === '' || rv === '0' || opts.sendInitialEvents === true) {
      for (const o of store.list(opts.resource, opts.namespace)) if (this.matches(o)) this.send('ADDED', o);
      if (opts.sendInitialEvents === true && opts.allowBookmarks)
        this.send('BOOKMARK', this.bookmark({ 'k8s.io/initial-events-end': 'true' }));
    } else {
      try {
        replay = store.eventsSince(opts.resource, Number(rv), rv);
      } catch (err) {
        if (!(err instanceof StatusError)) throw err;
        this.send('ERROR', err.toStatus());
        this.close();
        return;
      }
    }
    for (const e of replay) this.deliver(e);
    this.unsubscribe = store.subscribe((e) => this.deliver(e));
    this.timers.push(setTimeout(() => this.close(true), opts.timeoutMs));
    if (opts.allowBookmarks)
      this.timers.push(setInterval(() => this.send('BOOKMARK', this.bookmark()), opts.bookmarkIntervalMs));
  }

  /** Ends the stream; `timedOut` sends a last bookmark first so the client resumes from here. */
  close(timedOut = false): void {
    if (this.closed) return;
    if (timedOut && this.opts.allowBookmarks) this.send('BOOKMARK', this.bookmark());
    this.closed = true;
    this.unsubscribe?.();
    for (const t of this.timers) clearTimeout(t);
    if (!this.res.writableEnded) this.res.end();
    this.onClose(this);
  }

  private matches(o: KObject | undefined): boolean {
    if (!o) return false;
    const { namespace, labels, fields } = this.opts;
    if (namespace && o.metadata.namespace !== namespace) return false;
    return matchesLabels(labels, o.metadata.labels) && matchesFields(fields, o);
  }

  private deliver(e: StoredEvent): void {
    if (e.resource !== this.opts.resource) return;
    if (e.type === 'DELETED') {
      if (this.matches(e.previous ?? e.object)) this.send('DELETED', e.object);
      return;
    }
    const now = this.matches(e.object);
    const before = this.matches(e.previous);
    if (now && before) this.send('MODIFIED', e.object);
    else if (now) this.send('ADDED', e.object);
    else if (before) this.send('DELETED', e.object);
  }

  private bookmark(annotations?: Record<string, string>): object {
    const r = this.opts.resource;
    return {
      kind: r.kind,
      apiVersion: apiVersionOf(r),
      metadata: {
        resourceVersion: String(this.store.resourceVersion),
        ...(annotations ? { annotations } : {}),
      },
    };
  }

  private send(type: WatchEventType, object: unknown): void {
    if (this.closed) return;
    const shaped = type === 'ERROR' || type === 'BOOKMARK' ? object : this.opts.render(object as KObject);
    this.res.write(`${JSON.stringify({ type, object: shaped })}\n`);
    if (this.res.writableLength > MAX_BUFFERED) this.close();
  }
}
