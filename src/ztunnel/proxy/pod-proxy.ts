/**
 * One pod's proxy: the listener set inside the pod's network namespace (bound in ztunnel's order: the
 * DNS proxy on the pod's loopback :15053 when on, 15008, 15006, 15001, then 15080 on the pod's loopback)
 * and every connection it carries.
 * Implements the in-pod state manager's InPodProxy; the ProxyFactory starts one per enrolled pod.
 */
import type { Server, Socket } from 'node:net';
import { AmbitError, errorCode, errorMessage } from '../../errors.js';
import {
  INBOUND_HBONE_PORT,
  INBOUND_PLAINTEXT_PORT,
  OUTBOUND_PORT,
  SOCKS5_PORT,
} from '../../node/contract.js';
import { logger } from '../../runtime/log.js';
import type { WorkloadInfo, WorkloadUid } from '../../zds/messages.js';
import { DnsServer } from '../dns/server.js';
import type { InPodProxy, StopMode } from '../inpod/proxy.js';
import type { PodContext, ProxyDeps } from './context.js';
import type { ProxyErrorCode } from './errors.js';
import { handleInboundPlaintext } from './inbound-plaintext.js';
import { handleOutbound } from './outbound.js';
import type { PodSockets } from './pod-sockets.js';
import { handleSocks5 } from './socks5.js';

const log = logger('ztunnel::proxy');
/** At most one "refusing" warning per this interval, however many connections are refused. */
const REFUSAL_LOG_INTERVAL_MS = 5000;
let lastRefusalLog = Number.NEGATIVE_INFINITY;

/** Open files are near the process limit: cut a new connection at once so established ones keep theirs. */
function refuse(socket: Socket, component: string, deps: ProxyDeps): void {
  socket.resetAndDestroy();
  const now = Date.now();
  if (now - lastRefusalLog < REFUSAL_LOG_INTERVAL_MS) return;
  lastRefusalLog = now;
  log.warn('refusing new connections: open files near the process limit', {
    component,
    open: deps.fds?.open,
    limit: deps.fds?.limit,
  });
}

interface ListenerSpec {
  port: number;
  host: string;
  component: string;
  transparent: boolean;
  handle: (pod: PodContext, socket: Socket) => void;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

export class PodProxy implements InPodProxy, PodContext {
  readonly #listeners: Server[] = [];
  #dns: DnsServer | undefined;
  #stopped: Promise<void> | undefined;
  transparent = true;

  constructor(
    readonly uid: WorkloadUid,
    readonly info: WorkloadInfo,
    readonly sockets: PodSockets,
    readonly deps: ProxyDeps,
    private readonly onStopped: () => void = () => {},
  ) {}

  localWorkload() {
    return this.deps.store.findLocalWorkload({
      name: this.info.name,
      namespace: this.info.namespace,
      serviceAccount: this.info.serviceAccount,
    });
  }

  get connectionCount(): number {
    return this.sockets.openCount;
  }

  #specs(): ListenerSpec[] {
    // Istio's ztunnel: [::] (dual-stack) unless IPV6_ENABLED=false, then 0.0.0.0.
    const wildcard = this.deps.ipv6Enabled === false ? '0.0.0.0' : '::';
    const specs: ListenerSpec[] = [
      {
        port: INBOUND_HBONE_PORT,
        host: wildcard,
        component: 'inbound',
        transparent: true,
        handle: (pod, s) => pod.deps.hbone.inbound(pod, s),
      },
      {
        port: INBOUND_PLAINTEXT_PORT,
        host: wildcard,
        component: 'inbound plaintext',
        transparent: true,
        handle: handleInboundPlaintext,
      },
      {
        port: OUTBOUND_PORT,
        host: wildcard,
        component: 'outbound',
        transparent: true,
        handle: handleOutbound,
      },
    ];
    if (this.deps.socks5) {
      specs.push({
        port: SOCKS5_PORT,
        host: '127.0.0.1',
        component: 'socks5',
        transparent: false,
        handle: handleSocks5,
      });
    }
    return specs;
  }

  /** Binds every listener; on any failure closes the ones already bound and rejects. */
  async start(): Promise<void> {
    try {
      if (this.deps.dns) {
        const dns = new DnsServer(this, { store: this.deps.store, ...this.deps.dns });
        await dns.start();
        this.#dns = dns;
      }
      for (const spec of this.#specs()) {
        const server = await this.sockets.listen(spec);
        server.on('connection', (socket: Socket) => {
          if (this.deps.fds && !this.deps.fds.tryTake()) {
            refuse(socket, spec.component, this.deps);
            return;
          }
          this.sockets.track(socket);
          try {
            spec.handle(this, socket);
          } catch (err) {
            log.error('connection handler failed', { component: spec.component, error: errorMessage(err) });
            socket.destroy();
          }
        });
        server.on('error', (err) =>
          log.error('listener error', { component: spec.component, error: err.message }),
        );
        this.#listeners.push(server);
        log.info('listener established', {
          address: `${spec.host === '::' ? '[::]' : spec.host}:${spec.port}`,
          component: spec.component,
          transparent: spec.transparent,
        });
      }
    } catch (err) {
      await Promise.all(this.#listeners.splice(0).map(closeServer));
      await this.#dns?.stop();
      this.#dns = undefined;
      // A failed start keeps its cause's code (EADDRINUSE, ...): a plain AmbitError.
      const code = errorCode(err) ?? ('ERR_PROXY_START' satisfies ProxyErrorCode);
      throw new AmbitError(code, `failed to start proxy for pod ${this.uid}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  stop(mode: StopMode): Promise<void> {
    if (!this.#stopped) {
      this.onStopped();
      this.#stopped = this.#stop(mode);
    }
    return this.#stopped;
  }

  async #stop(mode: StopMode): Promise<void> {
    // Stop accepting first: nothing new may arrive while connections are cut or drained.
    const closing = this.#listeners.splice(0).map(closeServer);
    const dns = this.#dns?.stop();
    this.#dns = undefined;
    this.deps.hbone.podStopped(this, mode);
    await this.sockets.closeAll(mode, this.deps.drainDeadlineMs);
    await Promise.all([...closing, dns]);
  }
}
