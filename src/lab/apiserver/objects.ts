/**
 * What the API server does to an object on its way into storage: validation of names, labels and
 * the few required fields, defaulting (the fields real clients read back), and the spec/status split
 * of the `status` subresource.
 */
import { acceptedStatus, validateCrd } from './custom-resources.js';
import type { ResourceType } from './resources.js';
import { apiVersionOf } from './resources.js';
import { assignClusterIps, type ServiceFamily } from './service-ips.js';
import { badRequest, invalid, type StatusCause } from './status.js';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  [k: string]: unknown;
}

export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function nameRule(r: ResourceType): { re: RegExp; max: number; what: string } {
  if (r.plural === 'namespaces') return { re: DNS1123_LABEL, max: 63, what: 'a lowercase RFC 1123 label' };
  if (r.plural === 'services') return { re: DNS1035_LABEL, max: 63, what: 'a DNS-1035 label' };
  return { re: SUBDOMAIN, max: 253, what: 'a lowercase RFC 1123 subdomain' };
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

function checkStringMap(causes: StatusCause[], field: string, v: unknown, values: boolean): void {
  if (v === undefined) return;
  if (!isMap(v)) {
    causes.push({ reason: 'FieldValueInvalid', field, message: 'Invalid value: must be a map of strings' });
    return;
  }
  for (const [k, val] of Object.entries(v)) {
    if (!QUALIFIED.test(k) || k.length > 316)
      causes.push({
        reason: 'FieldValueInvalid',
        field,
        message: `Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.'`,
      });
    if (typeof val !== 'string')
      causes.push({
        reason: 'FieldValueInvalid',
        field: `${field}.${k}`,
        message: 'Invalid value: must be a string',
      });
    else if (values && (!LABEL_VALUE.test(val) || val.length > 63))
      causes.push({
        reason: 'FieldValueInvalid',
        field,
        message: `Invalid value: "${val}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
      });
  }
}

/** Throws a 422 Invalid listing every problem found. */
export function validate(r: ResourceType, obj: KObject): void {
  const causes: StatusCause[] = [];
  const rule = nameRule(r);
  const name = obj.metadata.name;
  if (typeof name !== 'string' || name === '')
    causes.push({
      reason: 'FieldValueRequired',
      field: 'metadata.name',
      message: 'Required value: name or generateName is required',
    });
  else if (!rule.re.test(name) || name.length > rule.max)
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'metadata.name',
      message: `Invalid value: "${name}": must be ${rule.what}`,
    });
  checkStringMap(causes, 'metadata.labels', obj.metadata.labels, true);
  checkStringMap(causes, 'metadata.annotations', obj.metadata.annotations, false);
  if (r.plural === 'pods') {
    const containers = obj.spec?.['containers'];
    if (!Array.isArray(containers) || containers.length === 0)
      causes.push({ reason: 'FieldValueRequired', field: 'spec.containers', message: 'Required value' });
    else
      containers.forEach((c, i) => {
        if (!isMap(c) || typeof c['name'] !== 'string' || c['name'] === '')
          causes.push({
            reason: 'FieldValueRequired',
            field: `spec.containers[${i}].name`,
            message: 'Required value',
          });
        if (!isMap(c) || typeof c['image'] !== 'string' || c['image'] === '')
          causes.push({
            reason: 'FieldValueRequired',
            field: `spec.containers[${i}].image`,
            message: 'Required value',
          });
      });
  }
  if (causes.length) throw invalid(r.kind, r.group, typeof name === 'string' ? name : '', causes);
  if (r.plural === 'customresourcedefinitions' && r.group === 'apiextensions.k8s.io') validateCrd(obj);
}

/** The body must be an object of this resource's kind; apiVersion/kind are filled in when absent. */
export function checkShape(r: ResourceType, body: unknown): KObject {
  if (!isMap(body)) throw badRequest(`the body of the request was not a ${r.kind} object`);
  const apiVersion = apiVersionOf(r);
  if (body['kind'] !== undefined && body['kind'] !== r.kind)
    throw badRequest(
      `the kind of the object (${String(body['kind'])}) does not match the resource ${r.plural} (${r.kind})`,
    );
  if (body['apiVersion'] !== undefined && body['apiVersion'] !== apiVersion)
    throw badRequest(
      `the API version in the data (${String(body['apiVersion'])}) does not match the expected API version (${apiVersion})`,
    );
  const metadata = body['metadata'] ?? {};
  if (!isMap(metadata)) throw badRequest('metadata must be an object');
  return { ...body, apiVersion, kind: r.kind, metadata: metadata as unknown as ObjectMeta };
}

/** Defaults set on create, mirroring what real clusters fill in (namespace name label, pod phase, cluster IPs). */
export function applyCreateDefaults(
  r: ResourceType,
  obj: KObject,
  usedClusterIps: Set<string>,
  serviceFamilies: readonly ServiceFamily[] = ['IPv4'],
): void {
  switch (r.plural) {
    case 'namespaces':
      obj.metadata.labels = { ...obj.metadata.labels, 'kubernetes.io/metadata.name': obj.metadata.name };
      obj.spec = { finalizers: ['kubernetes'], ...obj.spec };
      obj.status = { phase: 'Active' };
      break;
    case 'pods': {
      const spec = obj.spec ?? {};
      const sa = (spec['serviceAccountName'] ?? spec['serviceAccount'] ?? 'default') as string;
      obj.spec = {
        restartPolicy: 'Always',
        terminationGracePeriodSeconds: 30,
        dnsPolicy: 'ClusterFirst',
        schedulerName: 'default-scheduler',
        ...spec,
        serviceAccountName: sa,
        serviceAccount: sa,
      };
      // Status belongs to the kubelet: a new pod is Pending whatever the creator wrote.
      obj.status = { phase: 'Pending', qosClass: 'BestEffort' };
      break;
    }
    case 'services': {
      const spec = { type: 'ClusterIP', sessionAffinity: 'None', ...obj.spec } as Record<string, unknown>;
      assignClusterIps(spec, serviceFamilies, usedClusterIps);
      if (Array.isArray(spec['ports']))
        spec['ports'] = spec['ports'].map((p) =>
          isMap(p) ? { protocol: 'TCP', targetPort: p['port'], ...p } : p,
        );
      obj.spec = spec;
      obj.status = { loadBalancer: {} };
      break;
    }
    case 'customresourcedefinitions':
      if (r.group === 'apiextensions.k8s.io') obj.status = acceptedStatus(obj);
      break;
  }
}

/**
 * Which parts of `next` survive a write. Main resource: everything but status (when status is a
 * subresource). Status subresource: status and metadata (pods' annotations are written there, as
 * istio-cni does), never spec.
 */
export function applyWriteStrategy(
  r: ResourceType,
  old: KObject,
  next: KObject,
  subresource: 'status' | undefined,
): KObject {
  const out: KObject = { ...next, metadata: { ...next.metadata } };
  for (const k of [
    'uid',
    'creationTimestamp',
    'name',
    'namespace',
    'generateName',
    'deletionTimestamp',
    'deletionGracePeriodSeconds',
  ] as const) {
    // Only the API server sets these (deletionTimestamp and its grace period by a DELETE).
    const meta: Record<string, unknown> = out.metadata;
    if (old.metadata[k] === undefined) delete meta[k];
    else meta[k] = old.metadata[k];
  }
  if (subresource === 'status') {
    if (old.spec === undefined) delete out.spec;
    else out.spec = old.spec;
  } else if (r.subresources.includes('status')) {
    if (old.status === undefined) delete out.status;
    else out.status = old.status;
  }
  if (r.plural === 'namespaces')
    out.metadata.labels = { ...out.metadata.labels, 'kubernetes.io/metadata.name': old.metadata.name };
  if (
    r.plural === 'services' &&
    out.spec &&
    old.spec &&
    (out.spec['clusterIP'] === undefined || out.spec['clusterIP'] === '')
  )
    out.spec = { ...out.spec, clusterIP: old.spec['clusterIP'], clusterIPs: old.spec['clusterIPs'] };
  if (
    r.plural === 'pods' &&
    subresource !== 'status' &&
    old.spec?.['nodeName'] &&
    out.spec?.['nodeName'] !== old.spec['nodeName']
  )
    throw invalid(r.kind, r.group, old.metadata.name, [
      {
        reason: 'FieldValueForbidden',
        field: 'spec.nodeName',
        message: 'Forbidden: pod updates may not change the node',
      },
    ]);
  const specChanged = JSON.stringify(out.spec) !== JSON.stringify(old.spec);
  out.metadata.generation = (old.metadata.generation ?? 1) + (specChanged ? 1 : 0);
  return out;
}
