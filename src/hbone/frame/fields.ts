/**
 * Header-list rules of RFC 9113 §8.2-8.5 for HBONE's messages: which pseudo-headers a request or a response
 * may carry, no connection-specific fields, lower-case names. A violation is a malformed message, answered
 * with a stream error.
 */
import type { HeaderList } from './hpack.js';

export type HeaderRecord = Record<string, string>;

const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

function checkRegular(name: string, value: string): string | null {
  if (name.length === 0) return 'empty field name';
  if (name !== name.toLowerCase()) return `upper-case field name ${name}`;
  if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name}`;
  if (name === 'te' && value !== 'trailers') return 'te other than trailers';
  return null;
}

/** Builds the record of a list; repeated fields are joined with ", " (RFC 9110 §5.3). */
function collect(
  list: HeaderList,
  allowed: ReadonlySet<string>,
): { headers: HeaderRecord; error: string | null } {
  const headers: HeaderRecord = Object.create(null);
  let regularSeen = false;
  for (const [name, value] of list) {
    if (name.startsWith(':')) {
      if (regularSeen) return { headers, error: `pseudo-header ${name} after a regular field` };
      if (!allowed.has(name)) return { headers, error: `pseudo-header ${name} not allowed here` };
      if (name in headers) return { headers, error: `repeated pseudo-header ${name}` };
      headers[name] = value;
      continue;
    }
    regularSeen = true;
    const error = checkRegular(name, value);
    if (error) return { headers, error };
    const previous = headers[name];
    headers[name] = previous === undefined ? value : `${previous}, ${value}`;
  }
  return { headers, error: null };
}

/** A request: CONNECT has :method and :authority only (§8.5); any other method :method, :scheme, :path. */
export function requestFields(list: HeaderList): { headers: HeaderRecord; error: string | null } {
  const r = collect(list, REQUEST_PSEUDO);
  if (r.error) return r;
  const h = r.headers;
  if (h[':method'] === undefined) return { ...r, error: 'no :method' };
  if (h[':method'] === 'CONNECT' && h[':protocol'] === undefined) {
    if (!h[':authority']) return { ...r, error: 'CONNECT without :authority' };
    if (h[':scheme'] !== undefined || h[':path'] !== undefined)
      return { ...r, error: 'CONNECT with :scheme or :path' };
    return r;
  }
  if (!h[':scheme'] || !h[':path']) return { ...r, error: 'request without :scheme or :path' };
  return r;
}

const RESPONSE_PSEUDO = new Set([':status']);

export function responseFields(list: HeaderList): {
  headers: HeaderRecord;
  error: string | null;
  status: number;
} {
  const r = collect(list, RESPONSE_PSEUDO);
  const status = Number(r.headers[':status']);
  if (r.error) return { ...r, status };
  if (!/^[1-5][0-9][0-9]$/.test(r.headers[':status'] ?? '')) return { ...r, status, error: 'bad :status' };
  return { ...r, status };
}

/** Trailers carry no pseudo-headers. */
export function trailerFields(list: HeaderList): { headers: HeaderRecord; error: string | null } {
  return collect(list, new Set());
}

/** A record as a list, pseudo-headers first. */
export function toList(headers: HeaderRecord): HeaderList {
  const pseudo: HeaderList = [];
  const regular: HeaderList = [];
  for (const [name, value] of Object.entries(headers))
    (name.startsWith(':') ? pseudo : regular).push([name, value]);
  return pseudo.concat(regular);
}
