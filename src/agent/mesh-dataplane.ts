/**
 * Adding a pod to the mesh and taking it out, in the order that keeps capture fail-closed
 * (istio-cni `meshdataplane_linux.go` + `net_linux.go`):
 *
 *   add:    netns -> in-pod rules -> ztunnel Add + ack -> host probe set -> annotation `enabled`
 *   remove: in-pod rules -> ztunnel Del -> host probe set -> annotation removed
 *
 * On each failure of add:
 *   - netns unknown / unopenable, rules not written: the pod is forgotten, nothing else changed,
 *     non-retryable (a later event with a netns, or a new label change, starts over);
 *   - ztunnel did not ack: rules STAY (traffic refused, never bypassed), annotation `pending`,
 *     retryable: the queue retries until a ztunnel takes the pod;
 *   - probe set or `enabled` annotation failed: retryable; rules and proxy stay (every step is idempotent).
 * On each failure of remove (all retryable): rules not removed -> nothing else is touched, the
 * proxy keeps serving the captured pod; ztunnel Del failed -> rules are gone already (the pod is
 * uncaptured, not black-holed) and the netns stays cached for the retry; probe set or annotation
 * failed -> retried. A deleted or terminal pod (`isDelete`) gets no in-pod cleanup (its netns is gone).
 *
 * A pod's adds and removes run one at a time. An add from a CNI event whose plugin has gone (it
 * timed out while this agent was stalled) stops at the next step and undoes what it did, and a
 * netns named before the pod's cached one (another inode) is refused: a stale netns never replaces
 * the live one (AGENT_CALLER_GONE / AGENT_NETNS_STALE, both not retried).
 */
import type { V1Pod } from '@kubernetes/client-node';
import { errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';
import { NetnsHandle } from '../sys/index.js';
import { type WorkloadInfo, type WorkloadUid, workloadUid } from '../zds/index.js';
import { DataplaneError } from './errors.js';
import type { NetnsFinder } from './netns-finder.js';
import type { PodCache } from './pod-cache.js';
import { podIps, podRef, podUid, type RedirectionState, workloadInfo } from './pods.js';

const log = logger('ambit::agent::dataplane');

/** In-pod rules (src/redirect's Redirector). */
export interface PodRules {
  apply(netns: NetnsHandle, podIps: readonly string[]): Promise<unknown>;
  remove(netns: NetnsHandle): Promise<unknown>;
}

/** ztunnel over ZDS (src/zds's ZdsServer). */
export interface ProxyLink {
  addWorkload(uid: WorkloadUid, info: WorkloadInfo, netns: NetnsHandle): Promise<void>;
  delWorkload(uid: WorkloadUid): Promise<void>;
}

/**
 * The node's probe SNAT set (src/redirect's HostProbes). Entries carry the pod UID, so the set is
 * the one record of what was added for a pod: removal takes the UID's entries, never the IPs the
 * pod's status shows by then (they may differ from the CNI result's, or be gone).
 */
export interface ProbeSet {
  addPodIp(uid: string, ip: string): Promise<void>;
  removePod(uid: string): Promise<string[]>;
}

/** `ambient.istio.io/redirection` on the pod; null removes it (a pod already gone is fine). */
export interface Annotator {
  set(pod: V1Pod, value: RedirectionState | null): Promise<void>;
}

export interface MeshDataplaneDeps {
  cache: PodCache;
  finder: Pick<NetnsFinder, 'find'>;
  rules: PodRules;
  proxy: ProxyLink;
  probes: ProbeSet;
  annotator: Annotator;
}

/** What an add knows about its origin; a CNI event gives both, the reconciler neither. */
export interface AddRequest {
  /**
   * Aborted when the caller (the CNI plugin) has gone: it reported failure to the runtime, which
   * tears the sandbox down and retries. Nothing more is done, and what this add did is undone.
   */
  signal?: AbortSignal;
  /** When the netns path was named (process.hrtime.bigint(), the event's arrival); default: now. */
  seenAt?: bigint;
}

export class MeshDataplane {
  readonly #d: MeshDataplaneDeps;
  /** Per pod UID, the tail of its adds and removes: one runs at a time, in call order. */
  readonly #serial = new Map<string, Promise<unknown>>();

  constructor(deps: MeshDataplaneDeps) {
    this.#d = deps;
  }

  /** `netnsPath` comes from a CNI event; without it the cache, then a /proc scan, must know the netns. */
  addPodToMesh(
    pod: V1Pod,
    ips: readonly string[],
    netnsPath?: string,
    request: AddRequest = {},
  ): Promise<void> {
    return this.#one(podUid(pod), () => this.#add(pod, ips, netnsPath, request));
  }

  /** Runs `fn` after every earlier add or remove of pod `uid` settled. */
  #one<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.#serial.get(uid) ?? Promise.resolve()).then(fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.#serial.set(uid, tail);
    void tail.then(() => {
      if (this.#serial.get(uid) === tail) this.#serial.delete(uid);
    });
    return run;
  }

  async #add(pod: V1Pod, ips: readonly string[], netnsPath: string | undefined, request: AddRequest) {
    const uid = podUid(pod);
    const ref = podRef(pod);
    const info = workloadInfo(pod);
    const { cache, rules, proxy, annotator } = this.#d;
    const gone = (done: string) => {
      if (!request.signal?.aborted) return undefined;
      return new DataplaneError(
        'AGENT_CALLER_GONE',
        `the CNI plugin gave up on pod ${ref} before the agent was done (${done}); the runtime retries with the pod's live sandbox`,
        { retryable: false },
      );
    };
    const early = gone('nothing done');
    if (early) throw early;
    cache.ensure(uid, info);
    const { netns, fresh } = await this.#netnsFor(pod, uid, info, ips, netnsPath, request);
    /** Undoes this add when its caller left, unless the netns was the pod's already (then all was idempotent). */
    const abandon = async (err: DataplaneError, steps: { proxy: boolean; probes: boolean }) => {
      if (!fresh) throw err;
      log.warn('CNI caller gone; undoing the add', { pod: ref, uid });
      await rules.remove(netns).catch((e) => log.warn('undo: rules', { pod: ref, error: errorMessage(e) }));
      if (steps.proxy)
        await proxy
          .delWorkload(workloadUid(uid))
          .catch((e) => log.warn('undo: ztunnel', { pod: ref, error: errorMessage(e) }));
      if (steps.probes)
        await this.#d.probes
          .removePod(uid)
          .catch((e) => log.warn('undo: probe set', { pod: ref, error: errorMessage(e) }));
      if (cache.get(uid)?.netns === netns) cache.take(uid)?.netns?.close();
      throw err;
    };

    try {
      await rules.apply(netns, ips);
    } catch (err) {
      cache.take(uid)?.netns?.close();
      throw new DataplaneError(
        'AGENT_RULES_FAILED',
        `cannot write redirection rules in pod ${ref}: ${errorMessage(err)}`,
        {
          retryable: false,
          cause: err,
        },
      );
    }
    const afterRules = gone('rules written');
    if (afterRules) await abandon(afterRules, { proxy: false, probes: false });

    try {
      await proxy.addWorkload(workloadUid(uid), info, netns);
    } catch (err) {
      const left = gone('ztunnel did not take it');
      if (left) await abandon(left, { proxy: false, probes: false });
      log.warn('ztunnel did not take the pod; rules stay, annotation pending', {
        pod: ref,
        error: errorMessage(err),
      });
      try {
        await annotator.set(pod, 'pending');
      } catch (patchErr) {
        throw new DataplaneError(
          'AGENT_ANNOTATE_FAILED',
          `cannot annotate pod ${ref} pending: ${errorMessage(patchErr)}`,
          {
            retryable: true,
            cause: patchErr,
          },
        );
      }
      throw new DataplaneError(
        'AGENT_ZTUNNEL_FAILED',
        `pod ${ref} is not proxied yet: ${errorMessage(err)}`,
        {
          retryable: true,
          cause: err,
        },
      );
    }
    const afterProxy = gone('rules written, ztunnel took it');
    if (afterProxy) await abandon(afterProxy, { proxy: true, probes: false });

    await this.syncHostProbeIps(pod, ips);
    const afterProbes = gone('rules written, ztunnel took it, probe set updated');
    if (afterProbes) await abandon(afterProbes, { proxy: true, probes: true });

    try {
      await annotator.set(pod, 'enabled');
    } catch (err) {
      throw new DataplaneError(
        'AGENT_ANNOTATE_FAILED',
        `cannot annotate pod ${ref} enabled: ${errorMessage(err)}`,
        {
          retryable: true,
          cause: err,
        },
      );
    }
    log.info('pod added to the mesh', { pod: ref, uid, ips: ips.join(',') });
  }

  /** Upserts every IP of the pod into the probe set (idempotent). */
  async syncHostProbeIps(pod: V1Pod, ips: readonly string[]): Promise<void> {
    const uid = podUid(pod);
    for (const ip of ips) {
      try {
        await this.#d.probes.addPodIp(uid, ip);
      } catch (err) {
        throw new DataplaneError(
          'AGENT_PROBE_SET_FAILED',
          `cannot add ${ip} of pod ${podRef(pod)} to the probe set: ${errorMessage(err)}`,
          {
            retryable: true,
            cause: err,
          },
        );
      }
    }
  }

  /** `isDelete`: the pod is gone or terminal, its netns with it, so only node-side state is cleaned. */
  removePodFromMesh(pod: V1Pod, isDelete: boolean): Promise<void> {
    return this.#one(podUid(pod), () => this.#remove(pod, isDelete));
  }

  async #remove(pod: V1Pod, isDelete: boolean): Promise<void> {
    const uid = podUid(pod);
    const ref = podRef(pod);
    const { cache, rules, proxy, probes, annotator } = this.#d;

    if (!isDelete) {
      const cached = cache.get(uid)?.netns ?? null;
      const netns = cached ?? (await this.#d.finder.find([{ uid, ips: podIps(pod) }])).get(uid) ?? null;
      if (netns) {
        try {
          await rules.remove(netns);
        } catch (err) {
          throw new DataplaneError(
            'AGENT_RULES_REMOVE_FAILED',
            `cannot remove redirection rules from pod ${ref}: ${errorMessage(err)}`,
            {
              retryable: true,
              cause: err,
            },
          );
        } finally {
          if (netns !== cached) netns.close();
        }
      } else {
        log.warn('netns of pod unknown; its in-pod rules (if any) stay', { pod: ref, uid });
      }
    }

    try {
      await proxy.delWorkload(workloadUid(uid));
    } catch (err) {
      throw new DataplaneError(
        'AGENT_ZTUNNEL_FAILED',
        `ztunnel did not drop pod ${ref}: ${errorMessage(err)}`,
        {
          retryable: true,
          cause: err,
        },
      );
    }
    cache.take(uid)?.netns?.close();

    try {
      const removed = await probes.removePod(uid);
      if (removed.length > 0) log.debug('probe set entries removed', { pod: ref, ips: removed.join(',') });
    } catch (err) {
      throw new DataplaneError(
        'AGENT_PROBE_SET_FAILED',
        `cannot remove the probe set entries of pod ${ref}: ${errorMessage(err)}`,
        {
          retryable: true,
          cause: err,
        },
      );
    }

    try {
      await annotator.set(pod, null);
    } catch (err) {
      if (!isDelete) {
        throw new DataplaneError(
          'AGENT_ANNOTATE_FAILED',
          `cannot remove the redirection annotation of pod ${ref}: ${errorMessage(err)}`,
          {
            retryable: true,
            cause: err,
          },
        );
      }
      log.debug('annotation of deleted pod not removed', { pod: ref, error: errorMessage(err) });
    }
    log.info('pod removed from the mesh', { pod: ref, uid, deleted: isDelete });
  }

  /** The pod's netns; `fresh` when it was not already the pod's cached netns. */
  async #netnsFor(
    pod: V1Pod,
    uid: string,
    info: WorkloadInfo,
    ips: readonly string[],
    netnsPath: string | undefined,
    request: AddRequest,
  ): Promise<{ netns: NetnsHandle; fresh: boolean }> {
    const { cache } = this.#d;
    const ref = podRef(pod);
    if (netnsPath) {
      const seenAt = request.seenAt ?? process.hrtime.bigint();
      let handle: NetnsHandle;
      try {
        handle = NetnsHandle.open(netnsPath);
      } catch (err) {
        cache.take(uid)?.netns?.close();
        throw new DataplaneError(
          'AGENT_NETNS_OPEN',
          `cannot open netns ${netnsPath} of pod ${ref}: ${errorMessage(err)}`,
          {
            retryable: false,
            cause: err,
          },
        );
      }
      if (request.signal?.aborted) {
        handle.close();
        throw new DataplaneError(
          'AGENT_CALLER_GONE',
          `the CNI plugin gave up on pod ${ref} before the agent was done (nothing done); the runtime retries with the pod's live sandbox`,
          { retryable: false },
        );
      }
      const before = cache.get(uid)?.netns;
      const fresh = !before || before.closed || !before.sameAs(handle);
      const cached = cache.upsert(uid, info, handle, seenAt);
      if (!cached) {
        throw new DataplaneError(
          'AGENT_NETNS_STALE',
          `netns ${netnsPath} of pod ${ref} is older than the one it runs in (${before?.description}); not applied`,
          { retryable: false },
        );
      }
      return { netns: cached, fresh };
    }
    const cached = cache.get(uid)?.netns;
    if (cached && !cached.closed) return { netns: cached, fresh: false };
    const seenAt = process.hrtime.bigint();
    const found = (await this.#d.finder.find([{ uid, ips }]).catch(() => new Map<string, NetnsHandle>())).get(
      uid,
    );
    if (!found) {
      cache.take(uid)?.netns?.close();
      throw new DataplaneError(
        'AGENT_NETNS_NOT_FOUND',
        `netns of pod ${ref} not found: no process in a cgroup of pod ${uid} whose netns holds ${ips.join(', ') || 'its IP'}`,
        { retryable: false },
      );
    }
    const netns = cache.upsert(uid, info, found, seenAt);
    if (!netns) {
      throw new DataplaneError(
        'AGENT_NETNS_STALE',
        `netns of pod ${ref} found by /proc scan is older than the one cached meanwhile; not applied`,
        { retryable: false },
      );
    }
    return { netns, fresh: true };
  }
}
