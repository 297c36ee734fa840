/**
 * The lab's `httpbin` image: an HTTP server on :8000 that answers `GET /get` and `POST /post` with
 * JSON echoing what it received (headers, body, the client address it saw), like httpbin.org.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { logger } from '../../runtime/log.js';

const log = logger('httpbin');
export const HTTPBIN_PORT = 8000;
const MAX_BODY = 16 * 1024 * 1024;

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://httpbin');
  const common = {
    args: Object.fromEntries(url.searchParams),
    headers: req.headers,
    origin: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
    url: url.toString(),
  };
  if (url.pathname === '/get' && req.method === 'GET') return reply(res, 200, common);
  if (url.pathname === '/post' && req.method === 'POST') {
    const body = await readBody(req);
    if (!body) return reply(res, 413, { error: `body larger than ${MAX_BODY} bytes` });
    const data = body.toString('utf8');
    let json: unknown = null;
    try {
      json = JSON.parse(data);
    } catch {}
    return reply(res, 200, { ...common, data, json });
  }
  reply(res, 404, { error: `no route for ${req.method} ${url.pathname} (try GET /get or POST /post)` });
}

export async function runHttpbin(port = HTTPBIN_PORT): Promise<number> {
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, '::', resolve));
  log.info('listening', { port });
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
  server.close();
  server.closeAllConnections();
  return 0;
}
