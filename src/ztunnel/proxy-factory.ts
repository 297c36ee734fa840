/**
 * Builds what every pod proxy shares (ztunnel's ProxyFactory): per-identity workload certificates (a
 * CertificateManager over the CA), one TLS context per identity, the HBONE client pool, the :15008
 * servers and L4 policy with its connection tracker. Then starts each enrolled pod's proxy with its own
 * sockets: this is the in-pod state manager's InPodProxyFactory.
 */
import type { WorkloadStore } from '../discovery/store.js';
import { defaultTransport } from '../hbone/default-transport.js';
import { HbonePool } from '../hbone/pool.js';
import type { KeepaliveOptions } from '../hbone/settings.js';
import { HboneTlsContexts } from '../hbone/tls.js';
import type { TunnelTransport } from '../hbone/transport.js';
import type { CertificateAuthority } from '../identity/ca.js';
import { CertificateManager } from '../identity/manager.js';
import { ConnectionTracker } from '../policy/tracker.js';
import type { FdBudget, NetnsHandle } from '../sys/index.js';
import type { WorkloadInfo, WorkloadUid } from '../zds/messages.js';
import { Forwarder, type Upstream } from './dns/forwarder.js';
import type { DnsMetrics } from './dns/metrics.js';
import type { InPodProxy, InPodProxyFactory } from './inpod/proxy.js';
import type { HboneHandlers, ProxyDeps } from './proxy/context.js';
import { HboneInbound } from './proxy/inbound-hbone.js';
import { plaintextInboundPolicy } from './proxy/inbound-policy.js';
import type { TrafficMetrics } from './proxy/metrics.js';
import { handleHboneOutbound } from './proxy/outbound-hbone.js';
import { DEFAULT_TRUST_DOMAIN } from './proxy/pod-identity.js';
import { PodProxy } from './proxy/pod-proxy.js';
import { InPodSockets } from './proxy/pod-sockets.js';

export interface ProxyFactoryOptions {
  store: WorkloadStore;
  metrics: TrafficMetrics;
  /** SO_MARK of every socket the proxy makes (PACKET_MARK, 1337). */
  mark: number;
  /** SO_REUSEPORT on the pod listeners (INPOD_PORT_REUSE), for hand-over between two proxies. */
  portReuse: boolean;
  /** Upstream connect timeout (10 s upstream). */
  connectTimeoutMs: number;
  /** How long 'drain' lets connections finish before cutting them (5 s upstream). */
  drainDeadlineMs: number;
  /** The SOCKS5 listener on 127.0.0.1:15080. */
  socks5: boolean;
  /** IPV6_ENABLED (default true): pod listeners on `::`, else `0.0.0.0`. */
  ipv6Enabled?: boolean;
  /** When set, new connections are refused while open files run short of the process limit. */
  fds?: FdBudget;
  /** Where workload certificates come from; without one HBONE is off and the mesh paths are plaintext only. */
  ca?: CertificateAuthority;
  /** Trust domain of pods the store does not know yet (default cluster.local). */
  trustDomain?: string;
  /** Requested certificate validity (SECRET_TTL), seconds. */
  certTtlSeconds?: number;
  /** POOL_UNUSED_RELEASE_TIMEOUT, milliseconds (default 5 min). */
  poolIdleTimeoutMs?: number;
  /** How long an inbound client may take to finish its TLS handshake (default 10 s, as Istio's). */
  handshakeTimeoutMs?: number;
  /** HTTP/2 PING keepalive of HBONE connections, client and server (default 10 s / 20 s). */
  keepalive?: KeepaliveOptions;
  /** The HTTP/2 that carries HBONE, client and server (default: default-transport.ts's). */
  transport?: TunnelTransport;
  /** The DNS proxy on 15053 in each pod (DNS_CAPTURE): where it forwards what it cannot answer. */
  dns?: {
    upstreams: readonly Upstream[];
    clusterDomain: string;
    upstreamTimeoutMs?: number;
    /** istio_dns_* (unset: not counted). */
    metrics?: DnsMetrics;
  };
}

/** The HBONE half, when there is a certificate authority. */
export interface Hbone {
  certificates: CertificateManager;
  contexts: HboneTlsContexts;
  pool: HbonePool;
}

/** Without a certificate authority: 15008 is still bound (the rules expect it) but serves nothing. */
const HBONE_DISABLED: HboneHandlers = {
  outbound: (_pod, downstream, _route, record) => {
    record.reject('HBONE is not available in this proxy');
    downstream.resetAndDestroy();
  },
  inbound: (_pod, socket) => socket.destroy(),
  podStopped: () => {},
};

export class ProxyFactory implements InPodProxyFactory {
  readonly deps: ProxyDeps;
  readonly hbone: Hbone | undefined;
  readonly tracker: ConnectionTracker;
  readonly #options: ProxyFactoryOptions;
  readonly #proxies = new Map<WorkloadUid, PodProxy>();
  readonly #closers: (() => void)[] = [];

  constructor(options: ProxyFactoryOptions) {
    this.#options = options;
    // Inbound plaintext policies apply with or without HBONE, and a policy change cuts what it now denies.
    this.tracker = new ConnectionTracker(options.store);
    let handlers = HBONE_DISABLED;
    if (options.ca) {
      const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
      const certificates = new CertificateManager({ ca: options.ca, ttlSeconds: options.certTtlSeconds });
      const contexts = new HboneTlsContexts(certificates);
      const pool = new HbonePool({ idleTimeoutMs: options.poolIdleTimeoutMs });
      const keepalive = options.keepalive;
      const transport = options.transport ?? defaultTransport;
      const inbound = new HboneInbound({
        contexts,
        store: options.store,
        tracker: this.tracker,
        trustDomain,
        keepalive,
        transport,
        handshake: { handshakeTimeoutMs: options.handshakeTimeoutMs },
      });
      handlers = {
        outbound: (pod, downstream, route, record) =>
          handleHboneOutbound(
            { contexts, pool, trustDomain, keepalive, transport },
            pod,
            downstream,
            route,
            record,
          ),
        inbound: (pod, socket) => inbound.accept(pod, socket),
        podStopped: (pod, mode) => inbound.release(pod, mode),
      };
      this.hbone = { certificates, contexts, pool };
      this.#closers.push(
        () => pool.close(),
        () => inbound.close(),
        () => this.tracker.close(),
        () => contexts.close(),
        () => certificates.close(),
      );
    } else this.#closers.push(() => this.tracker.close());
    this.deps = {
      store: options.store,
      metrics: options.metrics,
      connectTimeoutMs: options.connectTimeoutMs,
      drainDeadlineMs: options.drainDeadlineMs,
      socks5: options.socks5,
      ipv6Enabled: options.ipv6Enabled,
      fds: options.fds,
      ...(options.dns
        ? {
            dns: {
              forwarder: new Forwarder({
                upstreams: options.dns.upstreams,
                timeoutMs: options.dns.upstreamTimeoutMs,
              }),
              clusterDomain: options.dns.clusterDomain,
              ...(options.dns.metrics ? { metrics: options.dns.metrics } : {}),
            },
          }
        : {}),
      inboundPolicy: plaintextInboundPolicy(options.store, this.tracker),
      hbone: handlers,
    };
  }

  async start(uid: WorkloadUid, info: WorkloadInfo, netns: NetnsHandle): Promise<InPodProxy> {
    const sockets = new InPodSockets(netns, { mark: this.#options.mark, portReuse: this.#options.portReuse });
    const proxy: PodProxy = new PodProxy(uid, info, sockets, this.deps, () => {
      if (this.#proxies.get(uid) === proxy) this.#proxies.delete(uid);
    });
    await proxy.start();
    this.#proxies.set(uid, proxy);
    return proxy;
  }

  /** The running proxies (admin views, tests). */
  get proxies(): ReadonlyMap<WorkloadUid, PodProxy> {
    return this.#proxies;
  }

  /** Releases what the proxies share (pool, servers, tracker, certificates); the pods' proxies stop first. */
  close(): void {
    for (const close of this.#closers.splice(0)) close();
  }
}
