/**
 * The lab's kubelet stand-in, one process per node (in the host netns, like a kubelet; CNI plugins
 * run inside the node's netns through nsenter). It watches the pods bound to its node and, per pod,
 * serially: creates the sandbox (retrying a failed CNI ADD with backoff while the pod stays Pending
 * with the error as its reason, as kubelet does), reports podIP(s), hostIP(s) and Running/Ready.
 * Deletion is graceful, as with a real kubelet: a DELETE only sets the pod's deletionTimestamp; the
 * kubelet then stops the pod's processes (SIGTERM, SIGKILL after the grace period), tears the sandbox
 * down (CNI DEL through the chain, netns, cgroup) and deletes the object with grace period 0 and its
 * UID as precondition. A forced deletion (grace 0) removes the object first; its DELETED event then
 * tears the sandbox down.
 */
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  ListWatch,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import { nodeIps } from '../ip-family.js';
import { findNode, loadLab } from '../lab.js';
import { formatPodRef } from '../names.js';
import type { LabNode } from '../state.js';
import { ClusterLayout } from './layout.js';
import { APP_PORTS, SandboxManager, type SandboxRecord, type SandboxSpec, sandboxIps } from './sandbox.js';

const log = logger('ambit::lab::kubelet');
const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 4000;
const WATCH_RESTART_MS = 1000;
/** kubelet's minimumGracePeriodInSeconds: even a forced deletion gives the processes this long. */
const MIN_GRACE_S = 2;
const DEFAULT_GRACE_S = 30;

/** The lab app a pod asks for: its first container's image, by its last path segment (`…/httpbin:1`). */
export function appOf(pod: V1Pod): string | undefined {
  const image = pod.spec?.containers?.[0]?.image ?? '';
  const base = image.split('/').pop()?.split(':')[0] ?? '';
  return APP_PORTS[base] !== undefined ? base : undefined;
}

/** One pod's work, serialised: sync (create or adopt) and delete never overlap. */
class PodWorker {
  #chain: Promise<void> = Promise.resolve();
  deleted = false;
  /** A sync is queued or running; further updates need no second one, it reads the latest record. */
  syncing = false;
  /** The pod has a deletionTimestamp and its termination is queued: never synced again. */
  terminating = false;
  #wake: (() => void) | undefined;

  run(task: () => Promise<void>): void {
    this.#chain = this.#chain.then(task, task);
  }

  /** Waits up to `ms`, returning early when the pod is deleted. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  markDeleted(): void {
    this.deleted = true;
    this.#wake?.();
  }
}

export class Kubelet {
  readonly #core: CoreV1Api;
  readonly #sandboxes: SandboxManager;
  readonly #workers = new Map<string, PodWorker>();
  readonly #lw: ListWatch<V1Pod>;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly kc: KubeConfig,
    readonly node: LabNode,
    sandboxes: SandboxManager,
  ) {
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#sandboxes = sandboxes;
    const fieldSelector = `spec.nodeName=${node.name}`;
    const list = () => this.#core.listPodForAllNamespaces({ fieldSelector });
    this.#lw = new ListWatch<V1Pod>(
      '/api/v1/pods',
      new Watch(kc),
      list as never,
      false,
      undefined,
      fieldSelector,
    );
    this.#lw.on('add', (pod) => this.#sync(pod));
    this.#lw.on('update', (pod) => this.#sync(pod));
    this.#lw.on('delete', (pod) => this.#delete(pod));
    this.#lw.on('error', (err) => {
      if (this.#stopped) return;
      log.warn('pod watch failed, restarting', { error: errorMessage(err) });
      this.#timer = setTimeout(() => this.#startWatch(), WATCH_RESTART_MS);
    });
  }

  static forNode(lab: string, nodeName: string): Kubelet {
    const state = loadLab(lab);
    const node = findNode(state, nodeName);
    const kc = new KubeConfig();
    // Its own credential (user system:node:<node>), not the admin's: what the Node authorizer allows.
    kc.loadFromFile(new ClusterLayout(lab).kubeletKubeconfig(nodeName));
    return new Kubelet(kc, node, new SandboxManager(state, node));
  }

  /** Tears down sandboxes of pods deleted while no kubelet ran, then watches. */
  async start(): Promise<void> {
    const { items } = await this.#core.listPodForAllNamespaces({
      fieldSelector: `spec.nodeName=${this.node.name}`,
    });
    const live = new Set(items.map((p) => p.metadata?.uid));
    for (const record of this.#sandboxes.records()) {
      if (live.has(record.uid)) continue;
      log.info('removing the sandbox of a pod deleted meanwhile', { pod: formatPodRef(record) });
      await this.#destroy(record);
    }
    this.#startWatch();
    log.info('lab kubelet started', { node: this.node.name, adopted: this.#sandboxes.records().length });
  }

  #startWatch(): void {
    if (this.#stopped) return;
    this.#lw.start().catch((err) => {
      log.warn('pod watch start failed', { error: errorMessage(err) });
      this.#timer = setTimeout(() => this.#startWatch(), WATCH_RESTART_MS);
    });
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    void this.#lw.stop();
    for (const w of this.#workers.values()) w.markDeleted();
  }

  #worker(uid: string): PodWorker {
    let w = this.#workers.get(uid);
    if (!w) {
      w = new PodWorker();
      this.#workers.set(uid, w);
    }
    return w;
  }

  #sync(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    if (pod.metadata?.deletionTimestamp) {
      this.#terminate(pod, uid);
      return;
    }
    const worker = this.#worker(uid);
    if (worker.terminating) return;
    if (worker.syncing) return;
    worker.syncing = true;
    worker.run(async () => {
      try {
        await this.#ensureRunning(pod, worker);
      } finally {
        worker.syncing = false;
      }
    });
  }

  /**
   * The pod has a deletionTimestamp: stop it within its deletionGracePeriodSeconds, remove the
   * sandbox, then delete the object (grace 0, UID precondition) so the deletion completes.
   */
  #terminate(pod: V1Pod, uid: string): void {
    const worker = this.#worker(uid);
    if (worker.terminating) return;
    worker.terminating = true;
    // Ends a sandbox-creation retry loop; a sandbox it makes meanwhile is removed at once.
    worker.markDeleted();
    const ref = { namespace: pod.metadata!.namespace!, name: pod.metadata!.name! };
    const grace = gracePeriod(pod);
    log.info('pod terminating, stopping its sandbox', { pod: formatPodRef(ref), grace_period_s: grace });
    worker.run(async () => {
      const record = this.#sandboxes.record(uid);
      if (record) await this.#destroy(record, grace);
      await this.#deleteObject(ref, uid, worker);
    });
  }

  /** The pod is gone from the API server (deleted with grace 0, or after our own final delete). */
  #delete(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const worker = this.#worker(uid);
    worker.markDeleted();
    worker.run(async () => {
      const record = this.#sandboxes.record(uid);
      if (record) await this.#destroy(record, gracePeriod(pod));
      this.#workers.delete(uid);
    });
  }

  async #destroy(record: SandboxRecord, graceSeconds = MIN_GRACE_S): Promise<void> {
    const warnings = await this.#sandboxes.destroy(record, Math.max(graceSeconds, MIN_GRACE_S) * 1000);
    for (const w of warnings) log.warn('sandbox tear-down', { pod: formatPodRef(record), warning: w });
    log.info('sandbox removed', { pod: formatPodRef(record), ip: record.ip });
  }

  /** The status manager's final delete: grace 0, only this very pod (a new one may reuse the name). */
  async #deleteObject(
    ref: { namespace: string; name: string },
    uid: string,
    worker: PodWorker,
  ): Promise<void> {
    for (let backoff = BACKOFF_START_MS; !this.#stopped; backoff = Math.min(backoff * 2, BACKOFF_MAX_MS)) {
      try {
        await this.#core.deleteNamespacedPod({
          ...ref,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid } },
        });
        log.info('pod deleted', { pod: formatPodRef(ref) });
        return;
      } catch (err) {
        // 404: already gone; 409: the name now belongs to a new pod. Either way this one is done.
        if (err instanceof ApiException && (err.code === 404 || err.code === 409)) return;
        log.warn('cannot delete the terminated pod, will retry', {
          pod: formatPodRef(ref),
          backoff_ms: backoff,
          error: errorMessage(err),
        });
        await worker.sleep(backoff);
      }
    }
  }

  async #ensureRunning(pod: V1Pod, worker: PodWorker): Promise<void> {
    if (pod.spec?.hostNetwork) {
      // Host-network pods (the node's own ztunnel) share the node's netns: no sandbox, the node's IP.
      if (pod.status?.phase !== 'Running' || !pod.status.hostIPs?.length) {
        await this.#patchStatus(
          { namespace: pod.metadata!.namespace!, name: pod.metadata!.name! },
          {
            phase: 'Running',
            hostIP: this.node.ip,
            hostIPs: nodeIps(this.node).map((ip) => ({ ip })),
            podIP: this.node.ip,
            podIPs: nodeIps(this.node).map((ip) => ({ ip })),
            conditions: [{ type: 'Ready', status: 'True' }],
            containerStatuses: (pod.spec.containers ?? []).map((c) => ({
              name: c.name,
              image: c.image ?? '',
              imageID: '',
              ready: true,
              started: true,
              restartCount: 0,
              state: { running: { startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z') } },
            })),
          },
        );
      }
      return;
    }
    const spec: SandboxSpec = {
      namespace: pod.metadata!.namespace!,
      name: pod.metadata!.name!,
      uid: pod.metadata!.uid!,
      app: appOf(pod),
    };
    const existing = this.#sandboxes.record(spec.uid);
    if (existing) {
      const s = pod.status;
      if (
        s?.phase !== 'Running' ||
        s.podIP !== existing.ip ||
        !s.hostIPs?.length ||
        s.podIPs?.length !== sandboxIps(existing).length
      )
        await this.#reportRunning(existing);
      return;
    }
    for (let attempt = 1, backoff = BACKOFF_START_MS; !worker.deleted && !this.#stopped; attempt++) {
      try {
        const record = await this.#sandboxes.create(spec);
        log.info('sandbox created', { pod: formatPodRef(spec), ip: record.ip, attempt });
        if (worker.deleted) {
          await this.#destroy(record);
          return;
        }
        await this.#reportRunning(record);
        return;
      } catch (err) {
        const message = `Failed to create pod sandbox: ${errorMessage(err)}`;
        log.warn('sandbox creation failed, will retry', {
          pod: formatPodRef(spec),
          attempt,
          backoff_ms: backoff,
          error: errorMessage(err),
        });
        await this.#patchStatus(spec, {
          phase: 'Pending',
          reason: 'FailedCreatePodSandBox',
          message,
          conditions: [
            { type: 'PodScheduled', status: 'True' },
            { type: 'Ready', status: 'False', reason: 'FailedCreatePodSandBox', message },
          ],
        });
        await worker.sleep(backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
  }

  async #reportRunning(record: SandboxRecord): Promise<void> {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await this.#patchStatus(record, {
      phase: 'Running',
      reason: null,
      message: null,
      hostIP: this.node.ip,
      hostIPs: nodeIps(this.node).map((ip) => ({ ip })),
      // Every family's address, primary first, as a dual-stack kubelet reports them.
      podIP: record.ip,
      podIPs: sandboxIps(record).map((ip) => ({ ip })),
      startTime: now,
      containerStatuses: [
        {
          name: record.app ?? 'sleep',
          ready: true,
          started: true,
          restartCount: 0,
          image: `ambit.lab/${record.app ?? 'sleep'}`,
          imageID: '',
          containerID: `lab://${record.containerId}`,
          state: { running: { startedAt: now } },
        },
      ],
      conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({
        type,
        status: 'True',
        lastTransitionTime: now,
      })),
    });
  }

  async #patchStatus(
    pod: { namespace: string; name: string },
    status: Record<string, unknown>,
  ): Promise<void> {
    try {
      await this.#core.patchNamespacedPodStatus(
        { name: pod.name, namespace: pod.namespace, body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      // The pod may be gone already; its DELETED event tears the sandbox down.
      log.warn('cannot update pod status', { pod: formatPodRef(pod), error: errorMessage(err) });
    }
  }
}

/** How long the pod's processes get: its deletionGracePeriodSeconds, else its spec's. */
function gracePeriod(pod: V1Pod): number {
  return (
    pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_S
  );
}

export async function runKubeletProcess(lab: string, node: string): Promise<number> {
  const kubelet = Kubelet.forNode(lab, node);
  await kubelet.start();
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('shutting down; pod sandboxes stay', { signal });
  kubelet.stop();
  return 0;
}
