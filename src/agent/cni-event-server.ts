/**
 * The node agent's end of the chained plugin: HTTP/1.1 on a Unix stream socket
 * (`<run dir>/pluginevent.sock`). `POST /cmdadd` hands a new pod to the injected handler and answers
 * 200 only once the handler finished, so the plugin (and the pod's sandbox) waits for enrollment.
 * `GET /status` answers the plugin's CNI STATUS: 200 when the agent is ready, 503 with the reason.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import { dirname } from 'node:path';
import { cniInputError } from '../cni/errors.js';
import { CMDADD_PATH, type CniAddEvent, parseCniEvent, STATUS_PATH } from '../cni/event.js';
import { errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';
import { agentError } from './errors.js';

/** Where an event came from: aborted once the plugin has gone, and when it arrived (hrtime). */
export interface CniRequest {
  signal: AbortSignal;
  receivedAt: bigint;
}

export type CniAddHandler = (event: CniAddEvent, request: CniRequest) => Promise<void>;

export interface CniEventServerOptions {
  socketPath: string;
  onAdd: CniAddHandler;
  /** undefined when ready, else the reason; default: always ready. */
  notReady?: () => string | undefined;
  /** Called once per answered /cmdadd with its status (for `istio_cni_plugin_requests_total`). */
  onResponse?: (status: number) => void;
}

const log = logger('ambit::agent::cni');
const MAX_BODY = 1 << 20;

export class CniEventServer {
  readonly socketPath: string;
  readonly #server: http.Server;

  private constructor(socketPath: string, server: http.Server) {
    this.socketPath = socketPath;
    this.#server = server;
  }

  /** Listens on a fresh socket (a stale file from a previous agent is replaced), mode 0600. */
  static async listen(options: CniEventServerOptions): Promise<CniEventServer> {
    const path = options.socketPath;
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    removeStale(path);
    const server = http.createServer((req, res) => {
      handle(options, req, res).catch((err) => {
        log.error('event handling failed', { error: errorMessage(err) });
        if (!res.headersSent) answer(res, 500, errorMessage(err));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    log.info('listening for CNI plugin events', { socket: path });
    return new CniEventServer(path, server);
  }

  /** Stops accepting, waits for in-flight requests, removes the socket file. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeIdleConnections();
    });
    try {
      unlinkSync(this.socketPath);
    } catch {}
  }
}

function removeStale(path: string): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (st.isDirectory()) {
    throw agentError('CNI_SOCKET_PATH_INVALID', `cannot listen on ${path}: it is a directory`);
  }
  unlinkSync(path);
}

function answer(res: http.ServerResponse, status: number, text: string): void {
  const body = text.endsWith('\n') || text === '' ? text : `${text}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function handle(opts: CniEventServerOptions, req: http.IncomingMessage, res: http.ServerResponse) {
  const receivedAt = process.hrtime.bigint();
  const caller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) caller.abort();
  });
  const path = (req.url ?? '').split('?')[0];
  if (path === STATUS_PATH) {
    if (req.method !== 'GET') return answer(res, 405, 'method not allowed');
    const why = opts.notReady?.();
    return why ? answer(res, 503, why) : answer(res, 200, 'ready');
  }
  if (path !== CMDADD_PATH) return answer(res, 404, `no such endpoint ${path}`);
  if (req.method !== 'POST') return answer(res, 405, 'method not allowed: use POST');

  const reply = (status: number, text: string) => {
    opts.onResponse?.(status);
    answer(res, status, text);
  };
  let body: Buffer | undefined;
  try {
    body = await readBody(req);
  } catch (err) {
    if (!caller.signal.aborted) throw err;
    log.warn('CNI add abandoned by the plugin before it was read; nothing done', {
      error: errorMessage(err),
    });
    return;
  }
  if (body === undefined) return reply(413, `event body larger than ${MAX_BODY} bytes`);
  let event: CniAddEvent;
  try {
    if (body.length === 0) throw cniInputError('EVENT_INVALID', 'invalid CNI event: empty body');
    let decoded: unknown;
    try {
      decoded = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw cniInputError('EVENT_INVALID', `invalid CNI event: not JSON: ${errorMessage(err)}`);
    }
    event = parseCniEvent(decoded);
  } catch (err) {
    log.warn('rejected CNI event', { error: errorMessage(err) });
    return reply(400, errorMessage(err));
  }
  const fields = {
    pod: `${event.podNamespace}/${event.podName}`,
    netns: event.netns,
    ips: event.ips.join(','),
  };
  // A caller that left while this agent was stalled shows as an end of stream already queued
  // behind its request: one turn of the event loop lets it be seen before anything is done.
  await new Promise((r) => setImmediate(r));
  if (caller.signal.aborted) {
    log.warn('CNI add abandoned by the plugin before it was handled; nothing done', fields);
    return;
  }
  log.info('CNI add event', fields);
  try {
    await opts.onAdd(event, { signal: caller.signal, receivedAt });
  } catch (err) {
    if (caller.signal.aborted) {
      log.warn('CNI add abandoned by the plugin; dropped', { ...fields, error: errorMessage(err) });
      return;
    }
    log.error('failed to add pod to the mesh', { ...fields, error: errorMessage(err) });
    return reply(500, errorMessage(err));
  }
  if (caller.signal.aborted) {
    // Too late to undo: the pod is enrolled in this netns; the runtime's retry replaces it.
    log.warn('CNI add abandoned by the plugin after the pod was enrolled', fields);
    return;
  }
  reply(200, '');
}
