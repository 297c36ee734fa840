/**
 * Wires HBONE into the pod proxy: per-identity certificates (CertificateManager over a CA), one TLS
 * context per identity, the client pool, the :15008 servers and L4 policy. The ztunnel process puts
 * `hooks` and `inboundPolicy` into ProxyDeps.
 */
import type { WorkloadStore } from '../discovery/store.js';
import { HbonePool } from '../hbone/pool.js';
import type { KeepaliveOptions } from '../hbone/settings.js';
import { HboneTlsContexts } from '../hbone/tls.js';
import type { CertificateAuthority } from '../identity/ca.js';
import { CertificateManager } from '../identity/manager.js';
import { applicablePolicies } from '../policy/applicable.js';
import { authorize } from '../policy/authorize.js';
import { ConnectionTracker } from '../policy/tracker.js';
import { logConnectionFailed } from './proxy/access-log.js';
import type { HboneHooks, InboundPolicy } from './proxy/context.js';
import { HboneInbound } from './proxy/inbound-hbone.js';
import { handleHboneOutbound } from './proxy/outbound-hbone.js';
import { DEFAULT_TRUST_DOMAIN } from './proxy/pod-identity.js';

export interface HboneOptions {
  ca: CertificateAuthority;
  store: WorkloadStore;
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
}

export interface Hbone {
  hooks: HboneHooks;
  inboundPolicy: InboundPolicy;
  certificates: CertificateManager;
  contexts: HboneTlsContexts;
  pool: HbonePool;
  tracker: ConnectionTracker;
  close(): void;
}

/** `ip:port` or `[ip]:port` -> ip. */
function ipOf(addr: string): string {
  return addr.startsWith('[') ? addr.slice(1, addr.indexOf(']')) : addr.slice(0, addr.lastIndexOf(':'));
}

/**
 * Policy for inbound plaintext (15006): no identity, so principal/namespace/service-account matches
 * never match. Allowed connections are tracked so a policy change that now denies them cuts them.
 */
export function plaintextInboundPolicy(store: WorkloadStore, tracker: ConnectionTracker): InboundPolicy {
  return (pod, info, dst, downstream) => {
    const policies = () => applicablePolicies(store, pod.localWorkload(), pod.info.namespace);
    const attributes = { srcIp: ipOf(info.srcAddr), dstIp: dst.address, dstPort: dst.port };
    const verdict = authorize(policies(), attributes);
    if (!verdict.allowed) return verdict.reason;
    const untrack = tracker.track({
      attributes,
      policies,
      close: (reason) => {
        logConnectionFailed(info, reason);
        downstream.resetAndDestroy();
      },
    });
    downstream.once('close', untrack);
    return undefined;
  };
}

export function createHboneHooks(options: HboneOptions): Hbone {
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const certificates = new CertificateManager({ ca: options.ca, ttlSeconds: options.certTtlSeconds });
  const contexts = new HboneTlsContexts(certificates);
  const pool = new HbonePool({ idleTimeoutMs: options.poolIdleTimeoutMs });
  const tracker = new ConnectionTracker(options.store);
  const keepalive = options.keepalive;
  const inbound = new HboneInbound({
    contexts,
    store: options.store,
    tracker,
    trustDomain,
    keepalive,
    handshake: { handshakeTimeoutMs: options.handshakeTimeoutMs },
  });
  const hooks: HboneHooks = {
    outbound: (pod, downstream, route, info) =>
      handleHboneOutbound({ contexts, pool, trustDomain, keepalive }, pod, downstream, route, info),
    inbound: (pod, socket) => inbound.accept(pod, socket),
    podStopped: (pod) => inbound.release(pod),
  };
  const inboundPolicy = plaintextInboundPolicy(options.store, tracker);
  return {
    hooks,
    inboundPolicy,
    certificates,
    contexts,
    pool,
    tracker,
    close() {
      pool.close();
      inbound.close();
      tracker.close();
      contexts.close();
      certificates.close();
    },
  };
}
