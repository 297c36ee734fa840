/**
 * CustomResourceDefinitions as kube-apiserver's apiextensions serves them: a CRD object under
 * `apiextensions.k8s.io/v1` is checked (its name is `<plural>.<group>`, names and a storage version
 * are given), accepted with the status conditions clients wait for (NamesAccepted, Established), and
 * from then on its resource is served at `/apis/<group>/<version>/...` like any built-in one: list,
 * watch, get, create, update, patch, delete, the same resourceVersions, RBAC and admission.
 * The lab keeps one copy per object and serves the CRD's storage version only (no conversion between
 * versions); the object's fields beyond metadata are stored as written (no schema pruning).
 */
import { CRD_RESOURCE, type ResourceType } from './resources.js';
import { invalid, type StatusCause } from './status.js';

const CRUD = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const KIND = /^[A-Z][A-Za-z0-9]*$/;

type Obj = Record<string, unknown>;
/** What is read of a stored CRD object (objects.ts's KObject has these). */
interface CrdObject {
  metadata: { name: string };
  spec?: Record<string, unknown>;
}

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

/** The served (storage) version of a CRD's spec, or the causes that make it invalid. */
function readSpec(crd: CrdObject): { type?: ResourceType; causes: StatusCause[] } {
  const causes: StatusCause[] = [];
  const spec: Obj = crd.spec ?? {};
  const names: Obj = isObj(spec['names']) ? spec['names'] : {};
  const need = (field: string, ok: boolean, message: string): void => {
    if (!ok) causes.push({ reason: 'FieldValueInvalid', field, message });
  };
  const group = typeof spec['group'] === 'string' ? spec['group'] : '';
  const plural = typeof names['plural'] === 'string' ? names['plural'] : '';
  const kind = typeof names['kind'] === 'string' ? names['kind'] : '';
  const scope = spec['scope'];
  need(
    'spec.group',
    group.includes('.'),
    `Invalid value: "${group}": should be a domain with at least one dot`,
  );
  need('spec.names.plural', DNS_LABEL.test(plural), `Invalid value: "${plural}": a lowercase DNS-1035 label`);
  need('spec.names.kind', KIND.test(kind), `Invalid value: "${kind}": a CamelCase kind`);
  need(
    'spec.scope',
    scope === 'Namespaced' || scope === 'Cluster',
    `Unsupported value: "${String(scope)}": supported values: "Cluster", "Namespaced"`,
  );
  if (crd.metadata.name !== `${plural}.${group}`)
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'metadata.name',
      message: `Invalid value: "${crd.metadata.name}": must be spec.names.plural+"."+spec.group`,
    });
  const versions = Array.isArray(spec['versions']) ? spec['versions'].filter(isObj) : [];
  const storage = versions.filter((v) => v['storage'] === true);
  if (storage.length !== 1)
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'spec.versions',
      message: 'Invalid value: must have exactly one version marked as storage version',
    });
  const stored = storage[0];
  if (stored && (typeof stored['name'] !== 'string' || stored['served'] !== true))
    causes.push({
      reason: 'FieldValueInvalid',
      field: 'spec.versions',
      message: 'Invalid value: the storage version must have a name and be served (the lab serves it alone)',
    });
  if (causes.length > 0 || !stored) return { causes };
  const subresources = isObj(stored['subresources']) ? stored['subresources'] : {};
  return {
    causes,
    type: {
      group,
      version: stored['name'] as string,
      plural,
      singular: typeof names['singular'] === 'string' ? names['singular'] : kind.toLowerCase(),
      kind,
      namespaced: scope === 'Namespaced',
      shortNames: strings(names['shortNames']),
      verbs: CRUD,
      subresources: isObj(subresources['status']) ? ['status'] : [],
      fields: [],
      ...(strings(names['categories']).length ? { categories: strings(names['categories']) } : {}),
    },
  };
}

/** Throws a 422 Invalid when the CRD cannot be served. */
export function validateCrd(crd: CrdObject): void {
  const { causes } = readSpec(crd);
  if (causes.length) throw invalid(CRD_RESOURCE.kind, CRD_RESOURCE.group, crd.metadata.name, causes);
}

/** The status kube-apiserver gives an accepted CRD: the names it serves, NamesAccepted and Established. */
export function acceptedStatus(crd: CrdObject): Record<string, unknown> {
  const spec: Obj = crd.spec ?? {};
  const names: Obj = isObj(spec['names']) ? spec['names'] : {};
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = (type: string, reason: string, message: string): Obj => ({
    type,
    status: 'True',
    lastTransitionTime: now,
    reason,
    message,
  });
  const { type } = readSpec(crd);
  return {
    acceptedNames: { ...names, singular: type?.singular ?? '' },
    conditions: [
      condition('NamesAccepted', 'NoConflicts', 'no conflicts found'),
      condition('Established', 'InitialNamesAccepted', 'the initial names have been accepted'),
    ],
    storedVersions: type ? [type.version] : [],
  };
}

/**
 * The resource types the stored CRDs define. The same CRD content gives the same ResourceType
 * object, so watches and history (which compare types by identity) see one type across rebuilds.
 */
export class CustomTypes {
  #byCrd = new Map<string, { json: string; type: ResourceType }>();

  /** Rebuilds from the CRD objects; a CRD whose group, names or version clash with a built-in is skipped. */
  update(crds: readonly CrdObject[], builtins: readonly ResourceType[]): void {
    const next = new Map<string, { json: string; type: ResourceType }>();
    for (const crd of crds) {
      const json = JSON.stringify(crd.spec ?? {});
      const kept = this.#byCrd.get(crd.metadata.name);
      const type = kept?.json === json ? kept.type : readSpec(crd).type;
      if (!type) continue;
      if (builtins.some((b) => b.group === type.group && (b.plural === type.plural || b.kind === type.kind)))
        continue;
      next.set(crd.metadata.name, { json, type });
    }
    this.#byCrd = next;
  }

  get types(): ResourceType[] {
    return [...this.#byCrd.values()].map((e) => e.type);
  }

  /** The type a CRD object defines, if it is served. */
  ofCrd(name: string): ResourceType | undefined {
    return this.#byCrd.get(name)?.type;
  }
}
