/**
 * The node proxy's admin server (reference ztunnel.md §7), localhost only: `GET /config_dump`,
 * `GET|POST /logging` to read or change log levels at run time, `POST /quitquitquit`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { type Handler, type HttpServer, reply, serveHttp } from '../../runtime/http-server.js';
import { formatListenAddress, type ListenAddress } from '../../runtime/listen-address.js';
import { LEVELS, type Level, logLevels, parseLevel, setLogLevel } from '../../runtime/log.js';
import { buildConfigDump, type ConfigDump, type ConfigDumpSources } from './config-dump.js';
import { adminError } from './errors.js';

export interface LogDirective {
  /** Undefined for the default level. */
  target?: string;
  level: Level;
}

export interface AdminOptions {
  dump: ConfigDumpSources;
  /** What `&reset` returns to: the levels the process started with. */
  startupLogLevels: readonly LogDirective[];
  /** Called once POST /quitquitquit has been answered. */
  quit: () => void;
}

const ENDPOINTS = [
  'GET  /config_dump          workloads, services, policies, certificates, workloadState, config',
  'GET  /logging              current log levels',
  'POST /logging?level=debug  set the default level (or level=info,ztunnel::proxy=debug)',
  'POST /logging?ztunnel::proxy=debug  set one target; add &reset to start from the start-up levels',
  'POST /quitquitquit         drain and exit',
];

function json(res: ServerResponse, status: number, body: unknown): void {
  reply(res, status, `${JSON.stringify(body, null, 2)}\n`, 'application/json');
}

/** `debug`, `info,ztunnel::proxy=debug`: RUST_LOG style; throws ERR_ADMIN_BAD_LEVEL naming the bad part. */
export function parseDirectives(text: string): LogDirective[] {
  const out: LogDirective[] = [];
  for (const part of text.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const target = eq >= 0 ? part.slice(0, eq).trim() : undefined;
    const level = parseLevel(eq >= 0 ? part.slice(eq + 1) : part);
    if (!level || target === '') {
      throw adminError(
        'ERR_ADMIN_BAD_LEVEL',
        `'${part}' is not <level> or <target>=<level> (levels: ${LEVELS.join(', ')})`,
      );
    }
    out.push(target === undefined ? { level } : { target, level });
  }
  return out;
}

/** Every change the query asks for, validated before any is applied. */
function loggingChanges(query: URLSearchParams): { reset: boolean; directives: LogDirective[] } {
  const directives: LogDirective[] = [];
  let reset = false;
  for (const [key, value] of query) {
    if (key === 'reset') reset = true;
    else if (key === 'level') directives.push(...parseDirectives(value));
    else directives.push(...parseDirectives(`${key}=${value}`));
  }
  return { reset, directives };
}

function applyDirectives(directives: readonly LogDirective[]): void {
  // A default level clears target overrides, so defaults go first.
  for (const d of directives) if (!d.target) setLogLevel(d.level);
  for (const d of directives) if (d.target) setLogLevel(d.level, d.target);
}

export function adminHandler(options: AdminOptions): Handler {
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    switch (url.pathname) {
      case '/':
        return reply(res, 200, `ambit ztunnel admin\n\n${ENDPOINTS.join('\n')}\n`);
      case '/config_dump': {
        if (method !== 'GET') return reply(res, 405, 'method not allowed: use GET\n');
        const dump: ConfigDump = buildConfigDump(options.dump);
        return json(res, 200, dump);
      }
      case '/logging': {
        if (method === 'GET') return json(res, 200, logLevels());
        if (method !== 'POST') return reply(res, 405, 'method not allowed: use GET or POST\n');
        let changes: ReturnType<typeof loggingChanges>;
        try {
          changes = loggingChanges(url.searchParams);
        } catch (err) {
          return reply(res, 400, `${(err as Error).message}\n`);
        }
        if (changes.reset) applyDirectives([{ level: 'info' }, ...options.startupLogLevels]);
        applyDirectives(changes.directives);
        return json(res, 200, logLevels());
      }
      case '/quitquitquit':
        if (method !== 'POST') return reply(res, 405, 'method not allowed: use POST\n');
        reply(res, 200, 'OK\n');
        options.quit();
        return;
      default:
        return reply(res, 404, `not found; endpoints:\n${ENDPOINTS.join('\n')}\n`);
    }
  };
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** The admin server exposes configuration and can stop the proxy, so it refuses non-loopback addresses. */
export function serveAdmin(addr: ListenAddress, options: AdminOptions): Promise<HttpServer> {
  if (!isLoopback(addr.host)) {
    return Promise.reject(
      adminError(
        'ERR_ADMIN_NOT_LOCAL',
        `the admin server listens on localhost only; ${formatListenAddress(addr)} is not a loopback address (use e.g. localhost:15000)`,
      ),
    );
  }
  return serveHttp('admin', addr, adminHandler(options));
}
