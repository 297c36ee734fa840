/**
 * The resource types the lab API server serves and the discovery documents that describe them.
 * kubectl builds its REST mapping from these, so kinds, short names and verbs must be right.
 */

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  verbs: string[];
  /** Subresources besides the main object; `status` splits spec and status writes. */
  subresources: ('status' | 'token')[];
  /** Field selector keys beyond metadata.name / metadata.namespace, as the real server allows. */
  fields: string[];
  categories?: string[];
}

const CRUD = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

/** CustomResourceDefinitions: each accepted one adds a served resource (custom-resources.ts). */
export const CRD_RESOURCE: ResourceType = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  plural: 'customresourcedefinitions',
  singular: 'customresourcedefinition',
  kind: 'CustomResourceDefinition',
  namespaced: false,
  shortNames: ['crd', 'crds'],
  verbs: CRUD,
  subresources: ['status'],
  fields: [],
  categories: ['api-extensions'],
};

export const RESOURCES: readonly ResourceType[] = [
  {
    group: '',
    version: 'v1',
    plural: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
    verbs: CRUD.filter((v) => v !== 'deletecollection'),
    subresources: ['status'],
    fields: ['status.phase'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'pods',
    singular: 'pod',
    kind: 'Pod',
    namespaced: true,
    shortNames: ['po'],
    verbs: CRUD,
    subresources: ['status'],
    fields: [
      'spec.nodeName',
      'spec.restartPolicy',
      'spec.schedulerName',
      'spec.serviceAccountName',
      'spec.hostNetwork',
      'status.phase',
      'status.podIP',
      'status.nominatedNodeName',
    ],
    categories: ['all'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'services',
    singular: 'service',
    kind: 'Service',
    namespaced: true,
    shortNames: ['svc'],
    verbs: CRUD,
    subresources: ['status'],
    fields: ['spec.clusterIP', 'spec.type'],
    categories: ['all'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'endpoints',
    singular: 'endpoints',
    kind: 'Endpoints',
    namespaced: true,
    shortNames: ['ep'],
    verbs: CRUD,
    subresources: [],
    fields: [],
  },
  {
    group: '',
    version: 'v1',
    plural: 'nodes',
    singular: 'node',
    kind: 'Node',
    namespaced: false,
    shortNames: ['no'],
    verbs: CRUD,
    subresources: ['status'],
    fields: ['spec.unschedulable'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'serviceaccounts',
    singular: 'serviceaccount',
    kind: 'ServiceAccount',
    namespaced: true,
    shortNames: ['sa'],
    verbs: CRUD,
    subresources: ['token'],
    fields: [],
  },
  {
    group: '',
    version: 'v1',
    plural: 'configmaps',
    singular: 'configmap',
    kind: 'ConfigMap',
    namespaced: true,
    shortNames: ['cm'],
    verbs: CRUD,
    subresources: [],
    fields: [],
  },
  {
    group: '',
    version: 'v1',
    plural: 'secrets',
    singular: 'secret',
    kind: 'Secret',
    namespaced: true,
    shortNames: [],
    verbs: CRUD,
    subresources: [],
    fields: ['type'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'events',
    singular: 'event',
    kind: 'Event',
    namespaced: true,
    shortNames: ['ev'],
    verbs: CRUD,
    subresources: [],
    fields: [
      'involvedObject.kind',
      'involvedObject.namespace',
      'involvedObject.name',
      'involvedObject.uid',
      'involvedObject.apiVersion',
      'involvedObject.resourceVersion',
      'involvedObject.fieldPath',
      'reason',
      'reportingComponent',
      'source',
      'type',
    ],
  },
  {
    group: 'discovery.k8s.io',
    version: 'v1',
    plural: 'endpointslices',
    singular: 'endpointslice',
    kind: 'EndpointSlice',
    namespaced: true,
    shortNames: [],
    verbs: CRUD,
    subresources: [],
    fields: ['addressType'],
  },
  CRD_RESOURCE,
];

/** A question resource: only `create` is served, nothing is stored. */
export interface ReviewType {
  group: string;
  version: 'v1';
  plural: string;
  singular: string;
  kind: string;
}

export const TOKEN_REVIEW: ReviewType = {
  group: 'authentication.k8s.io',
  version: 'v1',
  plural: 'tokenreviews',
  singular: 'tokenreview',
  kind: 'TokenReview',
};

/** `kubectl auth whoami`: who the caller is. */
export const SELF_SUBJECT_REVIEW: ReviewType = {
  group: 'authentication.k8s.io',
  version: 'v1',
  plural: 'selfsubjectreviews',
  singular: 'selfsubjectreview',
  kind: 'SelfSubjectReview',
};

/** `kubectl auth can-i`: may the caller do this. */
export const SELF_SUBJECT_ACCESS_REVIEW: ReviewType = {
  group: 'authorization.k8s.io',
  version: 'v1',
  plural: 'selfsubjectaccessreviews',
  singular: 'selfsubjectaccessreview',
  kind: 'SelfSubjectAccessReview',
};

export const REVIEWS: readonly ReviewType[] = [TOKEN_REVIEW, SELF_SUBJECT_REVIEW, SELF_SUBJECT_ACCESS_REVIEW];

export function findReview(group: string, version: string, plural: string): ReviewType | undefined {
  return REVIEWS.find((r) => r.group === group && r.version === version && r.plural === plural);
}

export function apiVersionOf(r: { group: string; version: string }): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

export function findResource(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural);
}

export function resourceOfKind(kind: string): ResourceType | undefined {
  return RESOURCES.find((r) => r.kind === kind);
}

export interface GroupVersion {
  name: string;
  version: string;
}

/** Built-in groups served besides the legacy core group, in discovery order. */
export const GROUPS: readonly GroupVersion[] = [
  { name: 'discovery.k8s.io', version: 'v1' },
  { name: 'authentication.k8s.io', version: 'v1' },
  { name: 'authorization.k8s.io', version: 'v1' },
  { name: 'apiextensions.k8s.io', version: 'v1' },
];

/** The built-in groups, then those of custom resources (each at the version its CRD serves). */
export function groupsOf(resources: readonly ResourceType[]): GroupVersion[] {
  const out = [...GROUPS];
  for (const r of resources)
    if (r.group !== '' && !out.some((g) => g.name === r.group))
      out.push({ name: r.group, version: r.version });
  return out;
}

export function apiVersions(serverAddress: string): object {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function groupDoc(g: { name: string; version: string }): object {
  const gv = { groupVersion: `${g.name}/${g.version}`, version: g.version };
  return { name: g.name, versions: [gv], preferredVersion: gv };
}

export function apiGroupList(served: readonly ResourceType[] = RESOURCES): object {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groupsOf(served).map(groupDoc) };
}

export function apiGroup(name: string, served: readonly ResourceType[] = RESOURCES): object | undefined {
  const g = groupsOf(served).find((x) => x.name === name);
  return g ? { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(g) } : undefined;
}

export function apiResourceList(
  group: string,
  version: string,
  served: readonly ResourceType[] = RESOURCES,
): object | undefined {
  const resources: object[] = [];
  for (const r of served.filter((x) => x.group === group && x.version === version)) {
    resources.push({
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.verbs,
      ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
      ...(r.categories ? { categories: r.categories } : {}),
    });
    for (const sub of r.subresources) {
      const kind = sub === 'token' ? 'TokenRequest' : r.kind;
      const verbs = sub === 'token' ? ['create'] : ['get', 'patch', 'update'];
      const extra = sub === 'token' ? { group: 'authentication.k8s.io', version: 'v1' } : {};
      resources.push({
        name: `${r.plural}/${sub}`,
        singularName: '',
        namespaced: r.namespaced,
        kind,
        verbs,
        ...extra,
      });
    }
  }
  for (const review of REVIEWS.filter((x) => x.group === group && x.version === version)) {
    resources.push({
      name: review.plural,
      singularName: review.singular,
      namespaced: false,
      kind: review.kind,
      verbs: ['create'],
    });
  }
  if (resources.length === 0) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: apiVersionOf({ group, version }),
    resources,
  };
}

/** kubectl warns on more than one minor version of skew; Debian's kubectl is 1.32. */
export const VERSION_INFO = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-ambit-lab',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'go1.23',
  compiler: 'gc',
  platform: 'linux/amd64',
};
