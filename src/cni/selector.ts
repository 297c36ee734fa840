/**
 * Ambient enrollment decided from labels, as istio-cni's enablement selectors do: Kubernetes
 * LabelSelectors paired as {podSelector, namespaceSelector}; a pod is ambient when any pair matches.
 */
import { cniInputError } from './errors.js';

export type Labels = Readonly<Record<string, string>>;

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface EnablementSelector {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
}

export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';
export const SIDECAR_STATUS_ANNOTATION = 'sidecar.istio.io/status';

/** The chart's default: pod label `ambient` anywhere, or namespace label `ambient` unless the pod says `none`. */
export const DEFAULT_ENABLEMENT_SELECTORS: readonly EnablementSelector[] = [
  { podSelector: { matchLabels: { [DATAPLANE_MODE_LABEL]: 'ambient' } } },
  {
    podSelector: { matchExpressions: [{ key: DATAPLANE_MODE_LABEL, operator: 'NotIn', values: ['none'] }] },
    namespaceSelector: { matchLabels: { [DATAPLANE_MODE_LABEL]: 'ambient' } },
  },
];

/** The part of a Pod the decision needs (a Kubernetes Pod object has these fields). */
export interface PodLike {
  metadata?: { labels?: Labels; annotations?: Labels };
  spec?: { hostNetwork?: boolean };
}

/** Kubernetes semantics: an absent or empty selector matches everything; NotIn/DoesNotExist match absent keys. */
export function matchesSelector(selector: LabelSelector | undefined, labels: Labels = {}): boolean {
  if (!selector) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const value = labels[req.key];
    const values = req.values ?? [];
    const ok =
      req.operator === 'In'
        ? has && values.includes(value!)
        : req.operator === 'NotIn'
          ? !has || !values.includes(value!)
          : req.operator === 'Exists'
            ? has
            : !has;
    if (!ok) return false;
  }
  return true;
}

function isEmpty(selector: LabelSelector | undefined): boolean {
  return (
    !selector ||
    (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0)
  );
}

/** Whether `pod` in a namespace with `namespaceLabels` belongs to the ambient mesh. */
export function isAmbientPod(
  pod: PodLike,
  namespaceLabels: Labels | undefined,
  selectors: readonly EnablementSelector[],
): boolean {
  if (pod.spec?.hostNetwork === true) return false;
  if (pod.metadata?.annotations && Object.hasOwn(pod.metadata.annotations, SIDECAR_STATUS_ANNOTATION)) {
    return false;
  }
  return selectors.some(
    (s) =>
      matchesSelector(s.podSelector, pod.metadata?.labels) &&
      matchesSelector(s.namespaceSelector, namespaceLabels),
  );
}

/** For namespace events: some non-empty namespace selector matches these labels. */
export function matchesNamespace(namespaceLabels: Labels, selectors: readonly EnablementSelector[]): boolean {
  return selectors.some(
    (s) => !isEmpty(s.namespaceSelector) && matchesSelector(s.namespaceSelector, namespaceLabels),
  );
}

const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

function validateLabelSelector(value: unknown, where: string): LabelSelector | undefined {
  const fail = (why: string): never => {
    throw cniInputError('SELECTOR_INVALID', `${where}: ${why}`);
  };
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) return fail('must be an object');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (key !== 'matchLabels' && key !== 'matchExpressions') fail(`unknown field '${key}'`);
  }
  const out: LabelSelector = {};
  if (v['matchLabels'] !== undefined && v['matchLabels'] !== null) {
    const ml = v['matchLabels'];
    if (typeof ml !== 'object' || Array.isArray(ml)) fail('matchLabels must be an object of strings');
    for (const [k, val] of Object.entries(ml as object)) {
      if (typeof val !== 'string') fail(`matchLabels.${k} must be a string`);
    }
    out.matchLabels = { ...(ml as Record<string, string>) };
  }
  if (v['matchExpressions'] !== undefined && v['matchExpressions'] !== null) {
    const me = v['matchExpressions'];
    if (!Array.isArray(me)) return fail('matchExpressions must be an array');
    out.matchExpressions = me.map((r, i) => {
      const req = r as Record<string, unknown> | null;
      if (!req || typeof req !== 'object') return fail(`matchExpressions[${i}] must be an object`);
      if (typeof req['key'] !== 'string' || req['key'] === '')
        fail(`matchExpressions[${i}].key must be a string`);
      if (typeof req['operator'] !== 'string' || !OPERATORS.has(req['operator'])) {
        fail(`matchExpressions[${i}].operator must be one of In, NotIn, Exists, DoesNotExist`);
      }
      const values = req['values'] ?? [];
      if (!Array.isArray(values) || values.some((x) => typeof x !== 'string')) {
        fail(`matchExpressions[${i}].values must be an array of strings`);
      }
      const op = req['operator'] as LabelSelectorRequirement['operator'];
      const list = values as string[];
      if ((op === 'In' || op === 'NotIn') && list.length === 0)
        fail(`matchExpressions[${i}]: ${op} needs values`);
      if ((op === 'Exists' || op === 'DoesNotExist') && list.length > 0) {
        fail(`matchExpressions[${i}]: ${op} takes no values`);
      }
      return { key: req['key'] as string, operator: op, values: list };
    });
  }
  return out;
}

/** Checks user-supplied selectors (config JSON or YAML) and returns them typed. */
export function parseEnablementSelectors(
  value: unknown,
  where = 'enablement_selectors',
): EnablementSelector[] {
  if (!Array.isArray(value)) throw cniInputError('SELECTOR_INVALID', `${where} must be an array`);
  return value.map((entry, i) => {
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) {
      throw cniInputError('SELECTOR_INVALID', `${where}[${i}] must be an object`);
    }
    const e = entry as Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (key !== 'podSelector' && key !== 'namespaceSelector') {
        throw cniInputError('SELECTOR_INVALID', `${where}[${i}]: unknown field '${key}'`);
      }
    }
    const out: EnablementSelector = {};
    const pod = validateLabelSelector(e['podSelector'], `${where}[${i}].podSelector`);
    const ns = validateLabelSelector(e['namespaceSelector'], `${where}[${i}].namespaceSelector`);
    if (pod) out.podSelector = pod;
    if (ns) out.namespaceSelector = ns;
    return out;
  });
}
