/**
 * The node agent marks an enrolled pod `ambient.istio.io/redirection: enabled`. Read through the
 * Kubernetes API, with the namespace and pod labels, so a failure can say which label is missing.
 */
import { CoreV1Api, KubeConfig, type V1Namespace, type V1Pod } from '@kubernetes/client-node';
import { REDIRECTION_ANNOTATION } from '../../agent/pods.js';
import { DATAPLANE_MODE_LABEL } from '../../cni/selector.js';
import { errorMessage } from '../../errors.js';
import type { DoctorContext } from '../context.js';
import { doctorError } from '../errors.js';
import type { CheckResult } from '../types.js';

const title = `pod annotation ${REDIRECTION_ANNOTATION}=enabled`;
const TIMEOUT_MS = 5_000;

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(doctorError('ETIMEDOUT', `${what}: no answer within ${TIMEOUT_MS} ms`)),
      TIMEOUT_MS,
    );
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export async function checkAnnotation(ctx: DoctorContext): Promise<CheckResult> {
  const t = ctx.target;
  if (!t.kubeconfig) {
    return {
      id: 'annotation',
      title,
      status: 'skip',
      detail: `skipped: ${t.kubeconfigMissing ?? 'no Kubernetes API to ask (pass --kubeconfig)'}`,
    };
  }
  const kubectl = `kubectl --kubeconfig ${t.kubeconfig}`;
  let pod: V1Pod;
  let ns: V1Namespace;
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(t.kubeconfig);
    const api = kc.makeApiClient(CoreV1Api);
    pod = await withTimeout(
      api.readNamespacedPod({ name: t.name, namespace: t.namespace }),
      'reading the pod',
    );
    ns = await withTimeout(api.readNamespace({ name: t.namespace }), 'reading the namespace');
  } catch (err) {
    return {
      id: 'annotation',
      title,
      status: 'fail',
      detail: `cannot read pod ${t.namespace}/${t.name} from the API server: ${errorMessage(err)}`,
      cause: 'the kubeconfig does not reach the API server, or the pod does not exist',
      next: `${kubectl} get pod -n ${t.namespace} ${t.name}`,
    };
  }
  const value = pod.metadata?.annotations?.[REDIRECTION_ANNOTATION];
  if (value === 'enabled')
    return { id: 'annotation', title, status: 'pass', detail: `${REDIRECTION_ANNOTATION}=enabled` };
  const nsMode = ns.metadata?.labels?.[DATAPLANE_MODE_LABEL];
  const podMode = pod.metadata?.labels?.[DATAPLANE_MODE_LABEL];
  const detail = `annotation is ${value === undefined ? 'absent' : `'${value}'`}; namespace label ${DATAPLANE_MODE_LABEL}=${nsMode ?? '(none)'}, pod label ${podMode ?? '(none)'}`;
  if (podMode === 'none' || (nsMode !== 'ambient' && podMode !== 'ambient')) {
    return {
      id: 'annotation',
      title,
      status: 'fail',
      detail,
      cause:
        podMode === 'none'
          ? `the pod opts out with ${DATAPLANE_MODE_LABEL}=none`
          : `neither namespace ${t.namespace} nor the pod is labelled ${DATAPLANE_MODE_LABEL}=ambient, so the node agent leaves it alone`,
      next:
        podMode === 'none'
          ? `${kubectl} label pod -n ${t.namespace} ${t.name} ${DATAPLANE_MODE_LABEL}-`
          : `${kubectl} label namespace ${t.namespace} ${DATAPLANE_MODE_LABEL}=ambient`,
    };
  }
  return {
    id: 'annotation',
    title,
    status: 'fail',
    detail,
    cause: 'the pod is selected for ambient but the node agent has not finished enrolling it',
    next: t.hints.agentLogs,
  };
}
