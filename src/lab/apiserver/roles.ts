/**
 * The RBAC policy the lab cluster starts with, as data: Kubernetes' bootstrap roles that matter here
 * (plugin/pkg/auth/authorizer/rbac/bootstrappolicy) and the roles Istio's charts install for the
 * ambient components in `istio-system`. Nothing else is granted, so an application's service account
 * gets what it gets on a fresh Kubernetes cluster: discovery and questions about itself.
 *
 * Groups of resources the lab does not serve (apps, configmaps, secrets, CRDs, ...) stay in the
 * charts' rules as written: they grant nothing here, and the roles read like the charts'.
 */
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1PolicyRule,
  V1Role,
  V1RoleBinding,
} from '@kubernetes/client-node';
import type { RbacPolicy } from './rbac.js';

/** The namespace the lab installs Istio's components in (the charts' release namespace). */
export const ISTIO_NAMESPACE = 'istio-system';
/** Service accounts of the charts: the node agent (istio-cni-node DaemonSet), istiod, ztunnel. */
export const CNI_SERVICE_ACCOUNT = 'istio-cni';
export const ISTIOD_SERVICE_ACCOUNT = 'istiod';
export const ZTUNNEL_SERVICE_ACCOUNT = 'ztunnel';

const READ = ['get', 'list', 'watch'];

const clusterRole = (name: string, rules: V1PolicyRule[]): V1ClusterRole => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRole',
  metadata: { name },
  rules,
});

const clusterBinding = (
  name: string,
  role: string,
  subjects: V1ClusterRoleBinding['subjects'],
): V1ClusterRoleBinding => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRoleBinding',
  metadata: { name },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
  subjects,
});

const group = (name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name });
const serviceAccount = (name: string) => ({ kind: 'ServiceAccount', name, namespace: ISTIO_NAMESPACE });

/** Kubernetes' defaults (v1.32), reduced to what the lab serves or could be asked. */
const KUBERNETES_ROLES: V1ClusterRole[] = [
  clusterRole('cluster-admin', [
    { apiGroups: ['*'], resources: ['*'], verbs: ['*'] },
    { nonResourceURLs: ['*'], verbs: ['*'] },
  ]),
  clusterRole('system:discovery', [
    {
      nonResourceURLs: [
        '/api',
        '/api/*',
        '/apis',
        '/apis/*',
        '/healthz',
        '/livez',
        '/openapi',
        '/openapi/*',
        '/readyz',
        '/version',
        '/version/',
      ],
      verbs: ['get'],
    },
  ]),
  clusterRole('system:basic-user', [
    {
      apiGroups: ['authorization.k8s.io'],
      resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'],
      verbs: ['create'],
    },
    { apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'], verbs: ['create'] },
  ]),
  clusterRole('system:public-info-viewer', [
    { nonResourceURLs: ['/healthz', '/livez', '/readyz', '/version', '/version/'], verbs: ['get'] },
  ]),
  clusterRole('system:service-account-issuer-discovery', [
    { nonResourceURLs: ['/.well-known/openid-configuration', '/openid/v1/jwks'], verbs: ['get'] },
  ]),
];

const KUBERNETES_BINDINGS: V1ClusterRoleBinding[] = [
  clusterBinding('cluster-admin', 'cluster-admin', [group('system:masters')]),
  clusterBinding('system:discovery', 'system:discovery', [group('system:authenticated')]),
  clusterBinding('system:basic-user', 'system:basic-user', [group('system:authenticated')]),
  clusterBinding('system:public-info-viewer', 'system:public-info-viewer', [
    group('system:authenticated'),
    group('system:unauthenticated'),
  ]),
  clusterBinding('system:service-account-issuer-discovery', 'system:service-account-issuer-discovery', [
    group('system:serviceaccounts'),
  ]),
];

/**
 * manifests/charts/istio-cni/templates/clusterrole.yaml: the node agent watches pods, nodes and
 * namespaces, and (ambient) writes the redirection annotation through `pods/status` — the narrower
 * right, so the agent cannot change a pod's spec or labels. The CNI plugin's kubeconfig carries the
 * same service account's token (the installer writes it), so the plugin has these rights too.
 */
const ISTIO_CNI_ROLES: V1ClusterRole[] = [
  clusterRole('istio-cni', [
    { apiGroups: [''], resources: ['pods', 'nodes', 'namespaces'], verbs: READ },
    { apiGroups: ['apps'], resources: ['daemonsets'], resourceNames: ['istio-cni-node'], verbs: ['get'] },
  ]),
  clusterRole('istio-cni-ambient', [
    { apiGroups: [''], resources: ['pods/status'], verbs: ['patch', 'update'] },
  ]),
];

/**
 * manifests/charts/istio-control/istio-discovery/templates/clusterrole.yaml (istiod-clusterrole and
 * istiod-gateway-controller) and role.yaml. istiod reads the cluster, reviews tokens (its CA and xDS
 * authenticate callers that way) and manages gateway deployments; it has no `serviceaccounts/token`
 * right: it never mints tokens.
 */
const ISTIOD_ROLES: V1ClusterRole[] = [
  clusterRole(`istiod-clusterrole-${ISTIO_NAMESPACE}`, [
    {
      apiGroups: ['admissionregistration.k8s.io'],
      resources: ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'],
      verbs: ['get', 'list', 'watch', 'update', 'patch'],
    },
    {
      apiGroups: [
        'config.istio.io',
        'security.istio.io',
        'networking.istio.io',
        'authentication.istio.io',
        'rbac.istio.io',
        'telemetry.istio.io',
        'extensions.istio.io',
      ],
      resources: ['*'],
      verbs: READ,
    },
    { apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: READ },
    { apiGroups: [''], resources: ['pods', 'nodes', 'services', 'namespaces', 'endpoints'], verbs: READ },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: READ },
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    { apiGroups: [''], resources: ['secrets'], verbs: READ },
  ]),
  clusterRole(`istiod-gateway-controller-${ISTIO_NAMESPACE}`, [
    {
      apiGroups: ['apps'],
      resources: ['deployments'],
      verbs: ['get', 'watch', 'list', 'update', 'patch', 'create', 'delete'],
    },
    {
      apiGroups: [''],
      resources: ['services', 'serviceaccounts'],
      verbs: ['get', 'watch', 'list', 'update', 'patch', 'create', 'delete'],
    },
  ]),
];

const ISTIOD_ROLE: V1Role = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'Role',
  metadata: { name: `istiod-${ISTIO_NAMESPACE}`, namespace: ISTIO_NAMESPACE },
  rules: [
    {
      apiGroups: [''],
      resources: ['configmaps'],
      verbs: ['create', 'get', 'list', 'watch', 'update', 'delete'],
    },
    {
      apiGroups: [''],
      resources: ['secrets'],
      verbs: ['create', 'get', 'watch', 'list', 'update', 'delete'],
    },
    {
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      verbs: ['get', 'update', 'patch', 'create'],
    },
  ],
};

const ISTIOD_ROLE_BINDING: V1RoleBinding = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'RoleBinding',
  metadata: { name: `istiod-${ISTIO_NAMESPACE}`, namespace: ISTIO_NAMESPACE },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `istiod-${ISTIO_NAMESPACE}` },
  subjects: [serviceAccount(ISTIOD_SERVICE_ACCOUNT)],
};

/*
 * ztunnel: manifests/charts/ztunnel/templates/rbac.yaml creates only its ServiceAccount (plus an SCC
 * role on OpenShift). It talks to istiod, never to the API server, so it is bound to nothing.
 */

export function bootstrapPolicy(): RbacPolicy {
  return {
    clusterRoles: [...KUBERNETES_ROLES, ...ISTIO_CNI_ROLES, ...ISTIOD_ROLES],
    clusterRoleBindings: [
      ...KUBERNETES_BINDINGS,
      clusterBinding('istio-cni', 'istio-cni', [serviceAccount(CNI_SERVICE_ACCOUNT)]),
      clusterBinding('istio-cni-ambient', 'istio-cni-ambient', [serviceAccount(CNI_SERVICE_ACCOUNT)]),
      clusterBinding(`istiod-clusterrole-${ISTIO_NAMESPACE}`, `istiod-clusterrole-${ISTIO_NAMESPACE}`, [
        serviceAccount(ISTIOD_SERVICE_ACCOUNT),
      ]),
      clusterBinding(
        `istiod-gateway-controller-${ISTIO_NAMESPACE}`,
        `istiod-gateway-controller-${ISTIO_NAMESPACE}`,
        [serviceAccount(ISTIOD_SERVICE_ACCOUNT)],
      ),
    ],
    roles: [ISTIOD_ROLE],
    roleBindings: [ISTIOD_ROLE_BINDING],
  };
}
