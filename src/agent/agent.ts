/**
 * The node agent process (istio-cni node agent, §3.1 start-up order): health and metrics first,
 * the plugin event socket at once (events fail until ready), informers synced, the snapshot of
 * enrolled pods rebuilt, the queue started, then the ZDS socket for ztunnel, then ready.
 * Stopping never touches in-pod rules: ztunnel keeps proxying enrolled pods meanwhile.
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { Counter, Registry } from 'prom-client';
import { errorMessage } from '../errors.js';
import { createRedirector, type HostProbes } from '../redirect/index.js';
import { type HttpServer, reply, serveHttp } from '../runtime/http-server.js';
import type { ListenAddress } from '../runtime/listen-address.js';
import { logger } from '../runtime/log.js';
import { serveMetrics } from '../runtime/metrics-server.js';
import type { NetnsHandle } from '../sys/index.js';
import { ZdsError, ZdsServer } from '../zds/index.js';
import { cniAddHandler } from './cni-add.js';
import { CniEventServer } from './cni-event-server.js';
import type { AgentConfig } from './config.js';
import { KubeWatcher, StatusAnnotator } from './kube.js';
import { MeshDataplane, type ProxyLink } from './mesh-dataplane.js';
import { NetnsFinder } from './netns-finder.js';
import { PodCache } from './pod-cache.js';
import { podIps } from './pods.js';
import { type AgentEvent, Reconciler } from './reconciler.js';
import { buildSnapshot, snapshotPods, syncProbeSet } from './startup-sync.js';
import { WorkQueue } from './work-queue.js';

const log = logger('ambit::agent');

export interface AgentOptions {
  /** Default: from config.kubeconfig, else in-cluster / ~/.kube/config. */
  kubeConfig?: KubeConfig;
  /** Attempts (2 s apart) at installing the host probe rules before giving up. */
  probeInstallAttempts?: number;
}

export class Agent {
  readonly registry = new Registry();
  readonly cache = new PodCache();
  #ready = false;
  #zds: ZdsServer | undefined;
  /** Where /healthz and /readyz are served (port 0 resolved). */
  healthAddress: ListenAddress | undefined;
  metricsAddress: ListenAddress | undefined;
  #closers: (() => Promise<void> | void)[] = [];

  private constructor(readonly config: AgentConfig) {}

  get ready(): boolean {
    return this.#ready;
  }

  get zds(): ZdsServer | undefined {
    return this.#zds;
  }

  /** Why the agent is not ready, or undefined. */
  notReady(): string | undefined {
    return this.#ready ? undefined : 'informers not synced or ZDS server not up yet';
  }

  static async start(config: AgentConfig, options: AgentOptions = {}): Promise<Agent> {
    const agent = new Agent(config);
    try {
      await agent.#start(options);
    } catch (err) {
      await agent.stop();
      throw err;
    }
    return agent;
  }

  async #start(options: AgentOptions): Promise<void> {
    const c = this.config;
    log.info('starting node agent', { node: c.nodeName, backend: c.backend, inbound: c.inbound });
    const health = await serveHttp('health', c.healthAddr, (req, res) => {
      const path = req.url?.split('?')[0];
      if (path === '/healthz') return reply(res, 200, 'ok\n');
      if (path === '/readyz')
        return this.#ready ? reply(res, 200, 'ready\n') : reply(res, 503, `${this.notReady()}\n`);
      reply(res, 404, 'not found\n');
    });
    this.healthAddress = health.address;
    this.#closers.push(() => health.close());
    const metrics: HttpServer = await serveMetrics(c.metricsAddr, this.registry);
    this.metricsAddress = metrics.address;
    this.#closers.push(() => metrics.close());
    const reconcileEvents = new Counter({
      name: 'nodeagent_reconcile_events_total',
      help: 'Informer events handled by the node agent, by type',
      labelNames: ['type'],
      registers: [this.registry],
    });
    const pluginRequests = new Counter({
      name: 'istio_cni_plugin_requests_total',
      help: 'CNI plugin events answered, by HTTP status',
      labelNames: ['response_code'],
      registers: [this.registry],
    });

    const redirector = createRedirector({ backend: c.backend, inbound: c.inbound, nodeNetns: c.hostNetns });
    const probes = await redirector.hostProbes();
    await installProbes(probes, options.probeInstallAttempts ?? 10);

    const finder = new NetnsFinder({ procRoot: c.procRoot });
    const proxy: ProxyLink = {
      addWorkload: (uid, info, netns) => {
        if (!this.#zds)
          throw new ZdsError('ZDS_NO_CONNECTION', 'ZDS server not started yet', { retryable: true });
        return this.#zds.addWorkload(uid, info, netns);
      },
      delWorkload: async (uid) => this.#zds?.delWorkload(uid),
    };
    const kc = options.kubeConfig ?? loadKubeConfig(c.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const dataplane = new MeshDataplane({
      cache: this.cache,
      finder,
      rules: redirector,
      proxy,
      probes,
      annotator: new StatusAnnotator(core),
    });

    let reconciler: Reconciler | undefined;
    const queue = new WorkQueue<AgentEvent>((e) => reconciler!.handle(e));
    this.#closers.push(() => queue.stop());
    const watcher = new KubeWatcher(kc, core, c.nodeName, (e) => queue.add(e));
    this.#closers.push(() => watcher.stop());
    reconciler = new Reconciler({
      view: watcher,
      dataplane,
      selection: c,
      systemNamespace: c.systemNamespace,
      enqueue: (e) => queue.add(e),
      events: reconcileEvents,
    });

    const events = await CniEventServer.listen({
      socketPath: c.eventSocket,
      onAdd: cniAddHandler({ view: watcher, selection: c, dataplane, notReady: () => this.notReady() }),
      notReady: () => this.notReady(),
      onResponse: (status) => pluginRequests.inc({ response_code: String(status) }),
    });
    this.#closers.push(() => events.close());

    await watcher.start();
    log.info('informers synced');
    const enrolled = snapshotPods(watcher.allPods(), c.systemNamespace);
    await syncProbeSet(enrolled, probes);
    const repair = c.reconcileOnStartup
      ? (netns: NetnsHandle, pod: Parameters<typeof podIps>[0]) => redirector.reconcile(netns, podIps(pod))
      : undefined;
    await buildSnapshot(enrolled, this.cache, finder, repair);
    queue.start();

    this.#zds = ZdsServer.listen({ path: c.zdsSocket, pods: this.cache, registry: this.registry });
    this.#closers.push(() => this.#zds?.close());
    this.#ready = true;
    log.info('node agent ready', {
      enrolled: enrolled.length,
      events: c.eventSocket,
      zds: c.zdsSocket,
      health: `${health.address.host}:${health.address.port}`,
    });
  }

  /** Stops serving; in-pod rules, probe entries and annotations stay as they are. */
  async stop(): Promise<void> {
    this.#ready = false;
    for (const close of this.#closers.splice(0).reverse()) {
      try {
        await close();
      } catch (err) {
        log.warn('error while stopping', { error: errorMessage(err) });
      }
    }
    this.cache.clear();
    this.#zds = undefined;
  }
}

function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

async function installProbes(probes: HostProbes, attempts: number): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await probes.install();
      return;
    } catch (err) {
      if (i >= attempts) throw err;
      log.warn('cannot install host probe rules, retrying', { attempt: i, error: errorMessage(err) });
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}
