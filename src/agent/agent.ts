/**
 * The node agent process (istio-cni node agent, §3.1 start-up order): health and metrics first,
 * the plugin event socket at once (events fail until ready), informers synced, the snapshot of
 * enrolled pods rebuilt, the queue started, then the ZDS socket for ztunnel, then ready.
 * Stopping never touches in-pod rules: ztunnel keeps proxying enrolled pods meanwhile. Except on
 * uninstall (`shutdown()`, the node agent's DaemonSet gone or being deleted, src/cni/safe-upgrade.ts):
 * then this node's pods are taken out of the mesh first (rules, ztunnel, probe set, annotation), and
 * the host probe rules and sets go too, so `helm uninstall` leaves pods running and unmeshed.
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { type ShutdownIntent, shutdownIntent } from '../cni/safe-upgrade.js';
import { errorMessage } from '../errors.js';
import { createRedirector, type HostProbes } from '../redirect/index.js';
import { type HttpServer, reply, serveHttp } from '../runtime/http-server.js';
import type { ListenAddress } from '../runtime/listen-address.js';
import { logger } from '../runtime/log.js';
import { Counter, Registry } from '../runtime/metrics.js';
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
import { isTerminal, podIps, podRef, redirectionState } from './pods.js';
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
  /** Set once started: what an uninstall needs. */
  #parts:
    | { watcher: KubeWatcher; queue: WorkQueue<AgentEvent>; dataplane: MeshDataplane; probes: HostProbes }
    | undefined;
  #kubeConfig: KubeConfig | undefined;
  #uninstalling = false;

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
    log.info('starting node agent', {
      node: c.nodeName,
      backend: c.backend,
      inbound: c.inbound,
      dnsCapture: c.dnsCapture,
    });
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

    const redirector = createRedirector({
      backend: c.backend,
      inbound: c.inbound,
      dnsCapture: c.dnsCapture,
      nodeNetns: c.hostNetns,
    });
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
    this.#kubeConfig = kc;
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
      onAdd: cniAddHandler({
        view: watcher,
        selection: c,
        dataplane,
        notReady: () => this.notReady(),
        uninstalling: () => this.#uninstalling,
      }),
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
    this.#parts = { watcher, queue, dataplane, probes };
    this.#ready = true;
    log.info('node agent ready', {
      enrolled: enrolled.length,
      events: c.eventSocket,
      zds: c.zdsSocket,
      health: `${health.address.host}:${health.address.port}`,
    });
  }

  /**
   * SIGTERM. An upgrade (or reboot) leaves every pod as it is; an uninstall takes this node's pods out
   * of the mesh first. Outside a DaemonSet (no POD_NAMESPACE) it is always an upgrade.
   */
  async shutdown(): Promise<ShutdownIntent> {
    const c = this.config;
    const intent: ShutdownIntent =
      c.podNamespace && this.#kubeConfig
        ? await shutdownIntent({
            kubeConfig: this.#kubeConfig,
            namespace: c.podNamespace,
            disableSafeUpgrade: c.disableSafeUpgrade,
          })
        : { kind: 'upgrade', reason: 'not in a DaemonSet (POD_NAMESPACE unset)' };
    if (intent.kind === 'uninstall') {
      log.info('uninstalling: taking the pods of this node out of the mesh', { reason: intent.reason });
      await this.uninstall();
    } else {
      log.info('shutting down; in-pod rules stay, ztunnel keeps proxying', { reason: intent.reason });
    }
    await this.stop();
    return intent;
  }

  /**
   * Takes every pod of this node out of the mesh (in-pod rules, ztunnel, probe set entries, the
   * annotation) and removes the host probe rules and sets. New pods the plugin still asks about start
   * unmeshed meanwhile. A pod that fails is logged and the rest go on: nothing here is retried.
   */
  async uninstall(): Promise<{ removed: number; failed: number }> {
    this.#uninstalling = true;
    const parts = this.#parts;
    if (!parts) return { removed: 0, failed: 0 };
    parts.queue.stop();
    const pods = parts.watcher
      .allPods()
      .filter(
        (p) => this.cache.get(p.metadata?.uid ?? '') !== undefined || redirectionState(p) !== undefined,
      );
    if (pods.length > 0 && (this.#zds?.connectionCount ?? 0) === 0) {
      // Nothing can tell ztunnel now; it keeps the pods' listeners until it exits or the next agent's
      // snapshot (which lacks them) reaches it. Traffic goes direct once the rules are gone.
      log.warn('no ztunnel connected; it keeps its proxies of these pods until it exits or reconnects', {
        pods: pods.length,
      });
    }
    let removed = 0;
    let failed = 0;
    const next = pods.values();
    const worker = async () => {
      for (const pod of next) {
        try {
          await parts.dataplane.removePodFromMesh(pod, isTerminal(pod));
          removed++;
        } catch (err) {
          failed++;
          log.error('cannot take pod out of the mesh', { pod: podRef(pod), error: errorMessage(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, pods.length) }, worker));
    try {
      await parts.probes.uninstall();
    } catch (err) {
      log.error('cannot remove the host probe rules and sets', { error: errorMessage(err) });
    }
    log.info('node uninstalled', { removed, failed });
    return { removed, failed };
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
    this.#parts = undefined;
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
