/**
 * A lab API server per test file, in a temporary state directory, and a small HTTPS client that
 * trusts its CA: plain requests, and watches that collect events line by line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ApiServer, type ApiServerOptions, startApiServer } from '../../src/lab/apiserver/index.js';
import { CONDITION_DEADLINE_MS } from '../helpers/wait.js';

export interface Response {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the server; the assertions check its shape
  body: any;
  text: string;
}

export class LabApi {
  constructor(
    readonly server: ApiServer,
    readonly dir: string,
  ) {}

  static async start(opts: ApiServerOptions = {}, given?: string): Promise<LabApi> {
    const dir = given ?? mkdtempSync(join(tmpdir(), 'ambit-apiserver-'));
    try {
      const server = await startApiServer({ stateFile: join(dir, 'state.json'), persistDelayMs: 5, ...opts });
      return new LabApi(server, dir);
    } catch (err) {
      // A server that did not start leaves no directory of ours behind (a given one is the caller's).
      if (given === undefined) rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async stop(removeDir = true): Promise<void> {
    await this.server.close();
    if (removeDir) rmSync(this.dir, { recursive: true, force: true });
  }

  call(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    token: string | null = this.server.token,
  ): Promise<Response> {
    const url = new URL(path, this.server.url);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          ca: this.server.caPem,
          headers: {
            'Content-Type': 'application/json',
            // Node sends DELETE bodies without framing unless the length is given.
            ...(payload !== undefined ? { 'Content-Length': String(Buffer.byteLength(payload)) } : {}),
            ...(token ? { Authorization: `Bearer ${token}` } : {}),
            ...headers,
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, text });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Opens a watch; events arrive in `events` until the server ends the stream (`ended`) or `close()`. */
  watch(path: string): Promise<WatchClient> {
    const url = new URL(path, this.server.url);
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        { ca: this.server.caPem, headers: { Authorization: `Bearer ${this.server.token}` } },
        (res) => {
          resolve(new WatchClient(res, () => req.destroy()));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }
}

export interface WatchEvent {
  type: string;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the server; the assertions check its shape
  object: any;
}

export class WatchClient {
  readonly events: WatchEvent[] = [];
  readonly ended: Promise<void>;
  private waiters: (() => void)[] = [];

  constructor(
    readonly res: import('node:http').IncomingMessage,
    readonly close: () => void,
  ) {
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        this.events.push(JSON.parse(buf.slice(0, nl)) as WatchEvent);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.ended = new Promise((resolve) => {
      res.on('end', resolve);
      res.on('close', resolve);
    });
  }

  /** Resolves once `n` events have arrived; rejects after `ms`. */
  async waitFor(n: number, ms = CONDITION_DEADLINE_MS): Promise<WatchEvent[]> {
    const deadline = Date.now() + ms;
    while (this.events.length < n) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `watch: ${this.events.length} of ${n} events after ${ms} ms: ${JSON.stringify(this.events.map((e) => e.type))}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.events;
  }
}

export function pod(
  name: string,
  extra: { labels?: Record<string, string>; nodeName?: string } = {},
): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...(extra.labels ? { labels: extra.labels } : {}) },
    spec: {
      ...(extra.nodeName ? { nodeName: extra.nodeName } : {}),
      containers: [{ name: 'app', image: 'busybox' }],
    },
  };
}

/** Polls `check` every 20 ms for at most `ms`; returns its last result when truthy. */
export async function eventually<T>(
  check: () => T | undefined | false,
  ms = CONDITION_DEADLINE_MS,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
