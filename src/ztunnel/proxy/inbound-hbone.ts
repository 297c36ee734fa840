/**
 * HboneHandlers.inbound: the pod's :15008 (reference ztunnel.md §3.5). TLS with the pod's certificate, HTTP/2
 * with up to 200 streams, and per CONNECT stream: 400 for a bad method or :authority, 503 for an illegal
 * port or an unreachable app, 401 when policy denies, else 200 and a pipe to the app dialled from the pod.
 */

import type { Socket } from 'node:net';
import type { WorkloadStore } from '../../discovery/store.js';
import type { Service, Workload } from '../../discovery/types.js';
import { errorCode, errorMessage } from '../../errors.js';
import { parseAuthority } from '../../hbone/headers.js';
import { pipeSocketStream } from '../../hbone/pipe.js';
import type { KeepaliveOptions } from '../../hbone/settings.js';
import {
  HANDSHAKE_TIMEOUT_MS,
  type HandshakeLimits,
  HboneServerTls,
  type HboneTlsContexts,
} from '../../hbone/tls.js';
import type {
  TunnelConnectionInfo,
  TunnelRequest,
  TunnelServer,
  TunnelStream,
  TunnelTransport,
} from '../../hbone/transport.js';
import type { SpiffeId } from '../../identity/spiffe.js';
import { ILLEGAL_PORTS, INBOUND_HBONE_PORT } from '../../node/contract.js';
import { applicablePolicies } from '../../policy/applicable.js';
import { authorize } from '../../policy/authorize.js';
import type { ConnectionTracker } from '../../policy/tracker.js';
import { logger } from '../../runtime/log.js';
import { unmapIPv4 } from '../../sys/index.js';
import type { StopMode } from '../inpod/proxy.js';
import { logConnectionFailed } from './access-log.js';
import { hostPort } from './connection-info.js';
import { ConnectionRecord } from './connection-record.js';
import type { PodContext } from './context.js';
import { podIdentity } from './pod-identity.js';
import { connectUpstream } from './upstream.js';

const log = logger('ztunnel::proxy::inbound');

export interface InboundDeps {
  contexts: HboneTlsContexts;
  store: WorkloadStore;
  tracker: ConnectionTracker;
  trustDomain: string;
  /** Handshake deadline and bound per pod listener (Istio's defaults when unset). */
  handshake?: Partial<HandshakeLimits>;
  keepalive?: KeepaliveOptions;
  transport: TunnelTransport;
}

interface PodListener {
  tls: HboneServerTls;
  h2: TunnelServer;
}

export class HboneInbound {
  readonly #deps: InboundDeps;
  /** One TLS acceptor + HTTP/2 server per (pod, identity); the identity changes if the store's view does. */
  readonly #listeners = new Map<string, Promise<PodListener>>();

  constructor(deps: InboundDeps) {
    this.#deps = deps;
  }

  accept(pod: PodContext, socket: Socket): void {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const identity = podIdentity(pod, this.#deps.trustDomain);
    // The pod's first connection waits for its certificate; the handshake deadline covers that wait too,
    // so connections cannot pile up while the CA is slow.
    const deadline = setTimeout(
      () => socket.destroy(),
      this.#deps.handshake?.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    );
    deadline.unref();
    this.#listenerFor(pod, identity).then(
      (l) => {
        clearTimeout(deadline);
        if (!socket.destroyed) l.tls.accept(socket);
      },
      (err) => {
        clearTimeout(deadline);
        logConnectionFailed(
          {
            srcAddr: hostPort(unmapIPv4(socket.remoteAddress ?? ''), socket.remotePort ?? 0),
            dstAddr: hostPort(unmapIPv4(socket.localAddress ?? ''), socket.localPort ?? 0),
            direction: 'inbound',
          },
          `no certificate for ${identity}: ${errorMessage(err)}`,
        );
        socket.destroy();
      },
    );
  }

  #listenerFor(pod: PodContext, identity: SpiffeId): Promise<PodListener> {
    const key = `${pod.uid}|${identity}`;
    let listener = this.#listeners.get(key);
    if (!listener) {
      listener = HboneServerTls.create(this.#deps.contexts, identity, this.#deps.handshake).then((tls) => {
        const h2 = this.#deps.transport.createServer(
          (stream, request, conn) => this.#onStream(pod, stream, request, conn),
          {
            keepalive: this.#deps.keepalive,
            onAbuse: (conn, reason) =>
              logConnectionFailed(
                {
                  srcAddr: conn ? hostPort(conn.remoteIp, conn.remotePort) : '',
                  dstAddr: conn ? hostPort(conn.localIp, INBOUND_HBONE_PORT) : '',
                  direction: 'inbound',
                },
                conn ? `${reason} (peer ${conn.peer})` : reason,
              ),
          },
        );
        tls.on('secure', (socket, peer) => h2.serve(socket, peer));
        tls.on('rejected', (err, socket) =>
          logConnectionFailed(
            {
              srcAddr: hostPort(unmapIPv4(socket.remoteAddress ?? ''), socket.remotePort ?? 0),
              dstAddr: hostPort(unmapIPv4(socket.localAddress ?? ''), socket.localPort ?? 0),
              direction: 'inbound',
            },
            err.message,
          ),
        );
        return { tls, h2 };
      });
      this.#listeners.set(key, listener);
      listener.catch(() => this.#listeners.delete(key));
    }
    return listener;
  }

  #onStream(pod: PodContext, stream: TunnelStream, headers: TunnelRequest, conn: TunnelConnectionInfo): void {
    const record = new ConnectionRecord(pod.deps.metrics, {
      direction: 'inbound',
      srcAddr: hostPort(conn.remoteIp, conn.remotePort),
      // As ztunnel logs it: the HBONE address the connection arrived at; the app's is dst.hbone_addr.
      dstAddr: hostPort(conn.localIp, INBOUND_HBONE_PORT),
    });
    const info = record.info;
    info.srcWorkload = this.#deps.store.workloadByIp(conn.remoteIp);
    info.srcIdentity = conn.peer;
    info.dstHboneAddr = headers[':authority'];
    info.dstWorkload = pod.localWorkload();
    info.dstIdentity = podIdentity(pod, this.#deps.trustDomain);
    info.securityPolicy = 'mutual_tls';
    const refuse = (status: number, error: string) => {
      stream.respond(status);
      record.reject(error);
    };
    if (headers[':method'] !== 'CONNECT') {
      refuse(400, `expected CONNECT, got ${String(headers[':method'])}`);
      return;
    }
    let target: { ip: string; port: number };
    try {
      target = parseAuthority(headers[':authority']);
    } catch (err) {
      refuse(400, errorMessage(err));
      return;
    }
    info.dstService = inboundService(this.#deps.store, info.dstWorkload, target.port);
    if (unmapIPv4(target.ip) !== conn.localIp) {
      refuse(400, `ip mismatch: ${conn.localIp} != ${target.ip}`);
      return;
    }
    if (ILLEGAL_PORTS.has(target.port)) {
      refuse(503, 'attempted recursive call to ourselves');
      return;
    }
    const attributes = {
      srcIp: conn.remoteIp,
      srcIdentity: conn.peer,
      dstIp: conn.localIp,
      dstPort: target.port,
    };
    const policies = () => applicablePolicies(this.#deps.store, pod.localWorkload(), pod.info.namespace);
    const verdict = authorize(policies(), attributes);
    if (!verdict.allowed) {
      info.responseFlags = 'DENY';
      refuse(401, `connection closed due to policy rejection: ${verdict.reason}`);
      return;
    }
    void this.#proxy(pod, stream, record, target, conn, attributes, policies);
  }

  async #proxy(
    pod: PodContext,
    stream: TunnelStream,
    record: ConnectionRecord,
    target: { ip: string; port: number },
    conn: TunnelConnectionInfo,
    attributes: Parameters<typeof authorize>[1],
    policies: () => ReturnType<typeof applicablePolicies>,
  ): Promise<void> {
    // A RST_STREAM read with the HEADERS is handled after this turn: wait for it, so no app connection is
    // dialled for a stream the client already reset (rapid reset), and give up a dial whose stream goes.
    await new Promise((resolve) => setImmediate(resolve));
    if (!stream.live) {
      log.debug('stream reset before the upstream connection', { 'src.addr': record.info.srcAddr });
      return;
    }
    const gone = new AbortController();
    const onGone = () => gone.abort();
    stream.once('close', onGone);
    record.opened();
    // Spoofing needs a transparent listener and is pointless when the client is this pod.
    const spoofSource = pod.transparent && conn.remoteIp !== target.ip ? conn.remoteIp : undefined;
    let upstream: Socket;
    try {
      upstream = await connectUpstream(pod, {
        host: target.ip,
        port: target.port,
        spoofSource,
        signal: gone.signal,
      });
    } catch (err) {
      stream.off('close', onGone);
      record.info.responseFlags = 'CONNECT';
      stream.respond(503);
      record.close(undefined, `connection failed: ${errorCode(err) ?? errorMessage(err)}`);
      return;
    }
    stream.off('close', onGone);
    upstream.setNoDelay(true);
    if (!stream.live) {
      // The client reset the stream, or the tunnel broke, while the app was being dialled: the app must not
      // see a clean, empty connection.
      upstream.resetAndDestroy();
      record.info.responseFlags = 'CONNECT';
      record.close(undefined, 'HBONE stream ended before the upstream connection was established');
      return;
    }
    record.count();
    stream.respond(200);
    let closedBy: string | undefined;
    record.trackPolicy(this.#deps.tracker, {
      attributes,
      policies,
      close: (reason) => {
        closedBy = reason;
        log.info('closing connection', { 'src.addr': record.info.srcAddr, reason });
        stream.reset(reason);
        upstream.resetAndDestroy();
      },
    });
    const result = await pipeSocketStream(upstream, stream);
    record.close(
      { downstreamToUpstream: result.streamToSocket, upstreamToDownstream: result.socketToStream },
      closedBy ?? result.error,
    );
  }

  /**
   * Drops the pod's TLS acceptors and HTTP/2 servers (its proxy stopped). On a drain the HTTP/2
   * sessions get a GOAWAY and their streams in flight finish (the pod's drain deadline bounds them);
   * otherwise they are cut at once.
   */
  release(pod: PodContext, mode: StopMode = 'immediate'): void {
    for (const [key, l] of this.#listeners) {
      if (!key.startsWith(`${pod.uid}|`)) continue;
      this.#listeners.delete(key);
      void l.then(
        ({ tls, h2 }) => {
          tls.close();
          if (mode === 'drain') h2.drain();
          else h2.close();
        },
        () => {},
      );
    }
  }

  close(): void {
    for (const l of this.#listeners.values()) {
      void l.then(
        ({ tls, h2 }) => {
          tls.close();
          h2.close();
        },
        () => {},
      );
    }
    this.#listeners.clear();
  }
}

/**
 * The service an inbound connection was for, guessed as ztunnel does: the :authority names the pod,
 * not the VIP, so it is the first service of the workload whose ports lead to the target port.
 */
function inboundService(
  store: WorkloadStore,
  workload: Workload | undefined,
  targetPort: number,
): Service | undefined {
  if (!workload) return undefined;
  for (const [key, ports] of workload.services) {
    const leads = [...ports].some(([port, target]) => (target || port) === targetPort);
    if (!leads) continue;
    const slash = key.indexOf('/');
    const service = store.service(key.slice(0, slash), key.slice(slash + 1));
    if (service) return service;
  }
  return undefined;
}
