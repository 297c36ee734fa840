/**
 * Is this shutdown an upgrade or an uninstall? (istio-cni's `ShouldStopCleanup`, section 2.7 of the
 * reference.) The installer and the node agent both ask when they get SIGTERM, by reading the node
 * agent's own DaemonSet:
 *
 *   present, not being deleted        -> upgrade (or reboot, or eviction): leave everything in place,
 *                                        so new ambient pods stall until the next agent is up
 *   not found, being deleted,
 *   401 / 403 (our credentials went
 *   with the release)                 -> uninstall: take ambit out of the node
 *   any other error, after retries    -> upgrade
 *
 * The last line differs from Istio (which cleans up): ambit's uninstall also takes every pod out of
 * the mesh, so guessing "uninstall" on an API blip during an upgrade would send pods' traffic in
 * plaintext. Failing closed keeps them meshed; the next agent finds them as they were.
 */
import { ApiException, AppsV1Api, type KubeConfig } from '@kubernetes/client-node';
import { errorMessage } from '../errors.js';

/** The node agent DaemonSet's name; the chart fixes it (the plugin lets its pods through by this name). */
export const AGENT_DAEMONSET_NAME = 'ambit-cni-node';

export interface ShutdownIntent {
  kind: 'upgrade' | 'uninstall';
  /** Why, for the log line. */
  reason: string;
}

export interface ShutdownIntentOptions {
  kubeConfig: KubeConfig;
  /** Namespace of the node agent's DaemonSet (POD_NAMESPACE). */
  namespace: string;
  daemonSet?: string;
  /** AMBIENT_DISABLE_SAFE_UPGRADE: always uninstall. */
  disableSafeUpgrade?: boolean;
  /** Reads of the DaemonSet before an unclear answer counts as an upgrade (default 3, 1 s apart). */
  attempts?: number;
  delayMs?: number;
  /** Per read (default 5 s): a shutdown must not hang on an API server that does not answer. */
  timeoutMs?: number;
}

export async function shutdownIntent(o: ShutdownIntentOptions): Promise<ShutdownIntent> {
  const name = o.daemonSet ?? AGENT_DAEMONSET_NAME;
  const ref = `daemonset ${o.namespace}/${name}`;
  if (o.disableSafeUpgrade) return { kind: 'uninstall', reason: 'AMBIENT_DISABLE_SAFE_UPGRADE is set' };
  const apps = o.kubeConfig.makeApiClient(AppsV1Api);
  const attempts = Math.max(1, o.attempts ?? 3);
  let last = '';
  for (let i = 1; i <= attempts; i++) {
    try {
      const ds = await withTimeout(
        apps.readNamespacedDaemonSet({ name, namespace: o.namespace }),
        o.timeoutMs ?? 5000,
        `reading ${ref}`,
      );
      if (ds.metadata?.deletionTimestamp) {
        return { kind: 'uninstall', reason: `${ref} is being deleted` };
      }
      return { kind: 'upgrade', reason: `${ref} still exists` };
    } catch (err) {
      if (err instanceof ApiException) {
        if (err.code === 404) return { kind: 'uninstall', reason: `${ref} not found` };
        if (err.code === 401 || err.code === 403) {
          return {
            kind: 'uninstall',
            reason: `reading ${ref} gave HTTP ${err.code}: this service account's credentials or roles are gone with the release`,
          };
        }
        last = `HTTP ${err.code}`;
      } else {
        last = errorMessage(err);
      }
    }
    if (i < attempts) await new Promise((r) => setTimeout(r, o.delayMs ?? 1000));
  }
  return {
    kind: 'upgrade',
    reason: `cannot tell whether ${ref} still exists (${last}); keeping pods meshed (fail closed)`,
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
