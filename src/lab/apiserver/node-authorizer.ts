/**
 * What a kubelet may do, as Kubernetes' Node authorizer (plugin/pkg/auth/authorizer/node) and the
 * NodeRestriction admission plugin decide it for `system:node:<name>` in group `system:nodes`:
 * the static node rules (bootstrappolicy.NodeRules, reduced to the resources the lab serves), a
 * token only for a service account a pod on the node runs as, and — at admission, where the object
 * is known — writes only to pods bound to the node and tokens only bound to such a pod.
 */
import type { V1PolicyRule } from '@kubernetes/client-node';
import type { KObject } from './objects.js';
import { ALLOW, type Attributes, type Authorizer, type Decision, noOpinion, rulesAllow } from './rbac.js';
import type { UserInfo } from './tokens.js';

const NODE_PREFIX = 'system:node:';
export const NODES_GROUP = 'system:nodes';

/** The node a user is a kubelet of, if it is one (nodeidentifier.NodeIdentity). */
export function nodeName(user: UserInfo): string | undefined {
  if (!user.username.startsWith(NODE_PREFIX) || !user.groups.includes(NODES_GROUP)) return undefined;
  const name = user.username.slice(NODE_PREFIX.length);
  return name === '' ? undefined : name;
}

/** The user a kubelet's credential names (what its client certificate would say). */
export function nodeUser(node: string): { name: string; groups: string[] } {
  return { name: `${NODE_PREFIX}${node}`, groups: [NODES_GROUP] };
}

/**
 * bootstrappolicy.NodeRules: pods are readable cluster-wide (kubelets list with a field selector the
 * authorizer cannot see); creating/deleting pods (mirror pods) and writing pod status are narrowed to
 * the node's own pods by NodeRestriction below.
 */
const NODE_RULES: V1PolicyRule[] = [
  { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
  {
    apiGroups: ['authorization.k8s.io'],
    resources: ['subjectaccessreviews', 'localsubjectaccessreviews'],
    verbs: ['create'],
  },
  { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['nodes'], verbs: ['create', 'get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['nodes/status'], verbs: ['update', 'patch'] },
  { apiGroups: [''], resources: ['nodes'], verbs: ['update', 'patch'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'update', 'patch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['create', 'delete'] },
  { apiGroups: [''], resources: ['pods/status'], verbs: ['update', 'patch'] },
  { apiGroups: [''], resources: ['pods/eviction'], verbs: ['create'] },
];

/** The pods the API server holds, for the node→pod→service account relation. */
export type PodSource = () => KObject[];

const podNode = (p: KObject): string => String(p.spec?.['nodeName'] ?? '');
const podServiceAccount = (p: KObject): string => String(p.spec?.['serviceAccountName'] || 'default');

export class NodeAuthorizer implements Authorizer {
  constructor(private readonly pods: PodSource) {}

  authorize(a: Attributes): Decision {
    const node = nodeName(a.user);
    if (node === undefined) return noOpinion();
    if (
      a.resourceRequest &&
      a.apiGroup === '' &&
      a.resource === 'serviceaccounts' &&
      a.subresource === 'token'
    ) {
      // The graph's edge serviceaccount -> pod -> node: some pod on this node runs as that account.
      if (a.verb !== 'create') return noOpinion(`can only create tokens for individual service accounts`);
      const related = this.pods().some(
        (p) => podNode(p) === node && p.metadata.namespace === a.namespace && podServiceAccount(p) === a.name,
      );
      return related ? ALLOW : noOpinion(`no relationship found between node '${node}' and this object`);
    }
    return rulesAllow(a, NODE_RULES) ? ALLOW : noOpinion();
  }
}

/**
 * NodeRestriction for the requests the lab serves; `undefined` admits, a string is the refusal
 * (answered as `<resource> "<name>" is forbidden: <reason>`).
 */
export function nodeRestriction(
  user: UserInfo,
  a: Extract<Attributes, { resourceRequest: true }>,
  lookups: { pod: (namespace: string, name: string) => KObject | undefined; body?: unknown },
): string | undefined {
  const node = nodeName(user);
  if (node === undefined || a.apiGroup !== '') return undefined;
  if (a.resource === 'pods') {
    const pod = lookups.pod(a.namespace, a.name);
    if (a.subresource === 'status' && (a.verb === 'update' || a.verb === 'patch')) {
      if (pod && podNode(pod) !== node)
        return `node "${node}" can only update pod status for pods with spec.nodeName set to itself`;
      return undefined;
    }
    if (a.subresource === '' && a.verb === 'delete') {
      if (pod && podNode(pod) !== node)
        return `node "${node}" can only delete pods with spec.nodeName set to itself`;
      return undefined;
    }
    if (a.subresource === '' && a.verb === 'create') {
      const body = lookups.body as {
        metadata?: { annotations?: Record<string, string> };
        spec?: { nodeName?: string };
      };
      if (!body?.metadata?.annotations?.['kubernetes.io/config.mirror'])
        return `pod does not have "kubernetes.io/config.mirror" annotation, node "${node}" can only create mirror pods`;
      if (body.spec?.nodeName !== node)
        return `node "${node}" can only create pods with spec.nodeName set to itself`;
    }
    return undefined;
  }
  if (a.resource === 'serviceaccounts' && a.subresource === 'token') {
    const spec = (lookups.body as { spec?: { boundObjectRef?: { kind?: string; name?: string } } })?.spec;
    const ref = spec?.boundObjectRef;
    if (!ref) return 'node requested token not bound to a pod';
    if (ref.kind !== 'Pod')
      return `node requested token bound to a ${ref.kind ?? 'object'}, only pods are allowed`;
    const pod = lookups.pod(a.namespace, ref.name ?? '');
    if (!pod) return undefined; // the token request itself answers 404
    if (podNode(pod) !== node) return 'node requested token bound to a pod scheduled on a different node';
    if (podServiceAccount(pod) !== a.name)
      return `node requested token for a service account the pod does not use`;
    return undefined;
  }
  if (a.resource === 'nodes' && a.name !== '' && a.name !== node && a.verb !== 'get')
    return `node "${node}" is not allowed to modify node "${a.name}"`;
  return undefined;
}
