/** Prometheus metrics in the text format on `/metrics` and `/stats/prometheus`, as ztunnel serves them. */

import { type HttpServer, reply, serveHttp } from './http-server.js';
import type { ListenAddress } from './listen-address.js';
import type { Registry } from './metrics.js';

const PATHS = new Set(['/metrics', '/stats/prometheus']);

export function serveMetrics(addr: ListenAddress, registry: Registry): Promise<HttpServer> {
  return serveHttp('metrics', addr, async (req, res) => {
    if (!PATHS.has(req.url?.split('?')[0] ?? '')) return reply(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'method not allowed\n');
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}
