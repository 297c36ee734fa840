/**
 * Readiness as ztunnel reports it (reference ztunnel.md §1.6): a set of named blocking tasks; the
 * process is ready when none is left. `GET /healthz/ready` answers 200 `ready`, or 503 with the
 * sorted pending task names.
 */
import { type HttpServer, reply, serveHttp } from '../../runtime/http-server.js';
import type { ListenAddress } from '../../runtime/listen-address.js';
import { logger } from '../../runtime/log.js';

const log = logger('ztunnel::readiness');

export class Readiness {
  readonly #pending = new Map<string, number>();

  /** Blocks readiness until `release(name)`; registering a pending task again is a no-op. */
  register(name: string): void {
    if (!this.#pending.has(name)) this.#pending.set(name, Date.now());
  }

  release(name: string): void {
    const since = this.#pending.get(name);
    if (since === undefined) return;
    this.#pending.delete(name);
    const took = `${Date.now() - since}ms`;
    if (this.#pending.size === 0) log.info(`Task '${name}' complete (${took}), marking server ready`);
    else log.info(`Task '${name}' complete (${took}), still awaiting ${this.#pending.size} tasks`);
  }

  ready(): boolean {
    return this.#pending.size === 0;
  }

  pending(): string[] {
    return [...this.#pending.keys()].sort();
  }
}

export function serveReadiness(addr: ListenAddress, readiness: Readiness): Promise<HttpServer> {
  return serveHttp('readiness', addr, (req, res) => {
    if (req.url?.split('?')[0] !== '/healthz/ready') return reply(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed\n');
    if (readiness.ready()) return reply(res, 200, 'ready\n');
    reply(res, 503, `not ready, pending: ${readiness.pending().join(', ')}\n`);
  });
}
