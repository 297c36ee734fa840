/**
 * The access log, target `access`, with ztunnel's field names (reference ztunnel.md §7):
 * `connection complete` at the end (ERROR with `error=` on failure), WARN `connection failed` for
 * connections rejected before they had enough context.
 */
import { type Fields, logger } from '../../runtime/log.js';
import type { ConnectionInfo } from './connection-info.js';

const log = logger('access');

function fieldsOf(c: ConnectionInfo): Fields {
  return {
    'src.addr': c.srcAddr,
    'src.workload': c.srcWorkload?.workloadName,
    'src.namespace': c.srcWorkload?.namespace,
    'src.identity': c.srcIdentity,
    'dst.addr': c.dstAddr,
    'dst.hbone_addr': c.dstHboneAddr,
    'dst.service': c.dstService?.hostname,
    'dst.workload': c.dstWorkload?.workloadName,
    'dst.namespace': c.dstWorkload?.namespace,
    'dst.identity': c.dstIdentity,
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
  fields['connection_security_policy'] = c.securityPolicy;
  if (c.responseFlags !== '-') fields['response_flags'] = c.responseFlags;
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
    'src.addr': c.srcAddr,
    'dst.addr': c.dstAddr,
    direction: c.direction,
    error,
  });
}
