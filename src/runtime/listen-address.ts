/** `host:port` listen addresses for the admin, metrics and readiness servers (`[::]:15020`, `localhost:0`). */
import { isIP } from 'node:net';
import { runtimeError } from './errors.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `host:port`, `[v6]:port` or `:port` (all addresses); `source` names the flag in errors. */
export function parseListenAddress(text: string, source: string): ListenAddress {
  const fail = (why: string): never => {
    throw runtimeError('ERR_CONFIG', `${source}=${text}: ${why} (expected host:port, e.g. [::]:15020)`);
  };
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return fail('not an address');
  const host = m[1] ?? (m[2] || '::');
  const port = Number(m[3]);
  if (port > 65535) return fail(`port ${port} is out of range`);
  if (m[1] !== undefined && isIP(host) !== 6) return fail(`'${host}' is not an IPv6 address`);
  if (host !== 'localhost' && isIP(host) === 0)
    return fail(`'${host}' is neither an IP address nor localhost`);
  return { host, port };
}

export function formatListenAddress(a: ListenAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
