/**
 * Dialling a peer's HBONE listener: a TCP socket from the caller's connect function (a pod proxy makes
 * it in the source pod's netns, marked), mutual TLS as the source identity, then a tunnel transport's
 * HTTP/2 on top.
 */
import type { Socket } from 'node:net';
import type { SpiffeId } from '../identity/spiffe.js';
import { defaultTransport } from './default-transport.js';
import { hboneError } from './errors.js';
import { formatAuthority } from './headers.js';
import type { KeepaliveOptions } from './settings.js';
import { connectHbone, type HboneTlsContexts } from './tls.js';
import type { TunnelConnection, TunnelTransport } from './transport.js';

export interface DialOptions {
  /** Starts the TCP connection to `host:port` (a pod proxy's: in the pod netns, marked, tracked). */
  connect: () => Socket;
  host: string;
  port: number;
  source: SpiffeId;
  expected: readonly SpiffeId[];
  connectTimeoutMs: number;
  /** PING interval and timeout of the connection (default: ztunnel's 10 s / 20 s). */
  keepalive?: KeepaliveOptions;
  /** The HTTP/2 on top of TLS (default: default-transport.ts). */
  transport?: TunnelTransport;
}

/** Dials the peer's HBONE listener and completes TCP, TLS and the HTTP/2 preface. */
export async function dialHbone(contexts: HboneTlsContexts, o: DialOptions): Promise<TunnelConnection> {
  const tcp = o.connect();
  tcp.setNoDelay(true);
  const timer = setTimeout(() => {
    tcp.destroy(hboneError('ETIMEDOUT', `HBONE connect to ${formatAuthority(o.host, o.port)} timed out`));
  }, o.connectTimeoutMs);
  let tlsConn: Awaited<ReturnType<typeof connectHbone>>;
  try {
    tlsConn = await connectHbone(contexts, { source: o.source, expected: o.expected, socket: tcp });
  } finally {
    clearTimeout(timer);
  }
  const transport = o.transport ?? defaultTransport;
  return transport.connect(tlsConn.socket, tlsConn.peer, {
    host: o.host,
    port: o.port,
    keepalive: o.keepalive,
  });
}
