/** What the proxy knows about one proxied connection: the subject of the access log and the metrics. */
import type { Service, Workload } from '../../discovery/types.js';

export type Direction = 'inbound' | 'outbound';

/** Istio's response flags for L4 (reference ztunnel.md §7). */
export type ResponseFlag =
  | '-'
  | 'DENY'
  | 'CONNECT'
  | 'TLS_FAILURE'
  | 'H2_HANDSHAKE_FAILURE'
  | 'NETWORK_POLICY'
  | 'IDENTITY_ERROR';

export interface ConnectionInfo {
  direction: Direction;
  /** `ip:port` of the downstream client. */
  srcAddr: string;
  srcWorkload?: Workload;
  srcIdentity?: string;
  /** `ip:port` of the L4 next hop (for HBONE the peer's :15008). */
  dstAddr: string;
  /** The :authority of an HBONE tunnel. */
  dstHboneAddr?: string;
  dstWorkload?: Workload;
  dstService?: Service;
  dstIdentity?: string;
  securityPolicy: 'mutual_tls' | 'unknown';
  responseFlags: ResponseFlag;
  startedAt: number;
}

export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
