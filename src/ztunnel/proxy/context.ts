/** What every listener of one pod's proxy shares: the pod, its sockets, the node-wide dependencies. */

import type { Socket } from 'node:net';
import type { WorkloadStore } from '../../discovery/store.js';
import type { Workload } from '../../discovery/types.js';
import type { FdBudget } from '../../sys/index.js';
import type { WorkloadInfo } from '../../zds/messages.js';
import type { Forwarder } from '../dns/forwarder.js';
import type { DnsMetrics } from '../dns/metrics.js';
import type { StopMode } from '../inpod/proxy.js';
import type { ConnectionRecord } from './connection-record.js';
import type { TrafficMetrics } from './metrics.js';
import type { PodSockets } from './pod-sockets.js';
import type { OutboundRoute } from './route.js';

/** The HBONE half of the data path, behind the same listeners (inert when there is no CA). */
export interface HboneHandlers {
  /** Carries an accepted outbound connection to its HBONE peer; owns `downstream` from then on. */
  outbound(
    pod: PodContext,
    downstream: Socket,
    route: Extract<OutboundRoute, { kind: 'hbone' }>,
    record: ConnectionRecord,
  ): void;
  /** Serves a connection accepted on the pod's :15008. */
  inbound(pod: PodContext, socket: Socket): void;
  /**
   * The pod's proxy stopped: release what was kept for it (its TLS acceptor, HTTP/2 server). `drain`:
   * HBONE clients are told to go away and their streams in flight finish; `immediate`: cut now.
   */
  podStopped(pod: PodContext, mode: StopMode): void;
}

/**
 * Decides whether an inbound connection may reach the app; returns a deny reason or undefined. An
 * allowed connection stays tracked until its record ends, so a later policy change can cut it.
 */
export type InboundPolicy = (
  pod: PodContext,
  record: ConnectionRecord,
  dst: { address: string; port: number },
  downstream: Socket,
) => string | undefined;

export interface ProxyDeps {
  store: WorkloadStore;
  metrics: TrafficMetrics;
  /** Upstream connect timeout (10 s upstream). */
  connectTimeoutMs: number;
  /** How long 'drain' lets connections finish before cutting them (5 s upstream). */
  drainDeadlineMs: number;
  /** The SOCKS5 listener on 127.0.0.1:15080. */
  socks5: boolean;
  /** IPV6_ENABLED (default true): the pod listeners bind `::` (dual-stack), else `0.0.0.0`. */
  ipv6Enabled?: boolean;
  inboundPolicy: InboundPolicy;
  hbone: HboneHandlers;
  /** When set, new connections are refused while open files run short of the process limit. */
  fds?: FdBudget;
  /** The DNS proxy on 15053 in each pod (DNS_CAPTURE); unset: none. */
  dns?: { forwarder: Forwarder; clusterDomain: string; metrics?: DnsMetrics };
}

export interface PodContext {
  readonly uid: string;
  readonly info: WorkloadInfo;
  /** Every socket the pod's proxy makes or accepts: in the pod netns, marked, drained when it stops. */
  readonly sockets: PodSockets;
  readonly deps: ProxyDeps;
  /** Whether the listeners got IP_TRANSPARENT, so upstream connections may spoof the client's address. */
  readonly transparent: boolean;
  /** The workload this pod is, when the store knows it (matched by name, namespace, service account). */
  localWorkload(): Workload | undefined;
}
