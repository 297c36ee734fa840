/**
 * The access log, target `access`, with ztunnel's field names and order (reference ztunnel.md §7),
 * in current ztunnel's plain line (tab-separated, lowercase level, strings quoted, addresses bare) or
 * JSON with LOG_FORMAT=json: DEBUG `connection opened`, `connection complete` at the end (ERROR with
 * `error=` on failure), WARN `connection failed` for connections rejected before they had enough
 * context. The identities show only for mutual TLS, the clusters when the workload is known.
 */
import { Display, type Fields, logger } from '../../runtime/log.js';
import type { ConnectionInfo } from './connection-info.js';

const log = logger('access', { style: 'istio' });

const addr = (a: string | undefined) => (a ? new Display(a) : undefined);

function fieldsOf(c: ConnectionInfo): Fields {
  const mtls = c.securityPolicy === 'mutual_tls';
  return {
    'src.addr': addr(c.srcAddr),
    'src.workload': c.srcWorkload?.workloadName || undefined,
    'src.namespace': c.srcWorkload?.namespace || undefined,
    'src.identity': mtls ? c.srcIdentity : undefined,
    'src.cluster': c.srcWorkload?.clusterId || undefined,
    'dst.addr': addr(c.dstAddr),
    'dst.hbone_addr': addr(c.dstHboneAddr),
    'dst.service': c.dstService?.hostname || undefined,
    'dst.workload': c.dstWorkload?.workloadName || undefined,
    'dst.namespace': c.dstWorkload?.namespace || undefined,
    'dst.identity': mtls ? c.dstIdentity : undefined,
    'dst.cluster': c.dstWorkload?.clusterId || undefined,
    direction: c.direction,
  };
}

export function logConnectionOpened(c: ConnectionInfo): void {
  if (log.enabled('debug')) log.debug('connection opened', fieldsOf(c));
}

/** `bytes_sent` is client->server for outbound, server->client for inbound, as ztunnel logs it. */
export function logConnectionComplete(
  c: ConnectionInfo,
  bytesSent: number,
  bytesRecv: number,
  error?: string,
): void {
  if (!error && !log.enabled('info')) return;
  const fields = fieldsOf(c);
  fields['bytes_sent'] = bytesSent;
  fields['bytes_recv'] = bytesRecv;
  fields['duration'] = `${Date.now() - c.startedAt}ms`;
  if (error) {
    fields['error'] = error;
    log.error('connection complete', fields);
  } else log.info('connection complete', fields);
}

export function logConnectionFailed(
  c: Pick<ConnectionInfo, 'srcAddr' | 'dstAddr' | 'direction'>,
  error: string,
): void {
  log.warn('connection failed', {
    'src.addr': addr(c.srcAddr),
    'dst.addr': addr(c.dstAddr),
    direction: c.direction,
    error,
  });
}
