/**
 * The three patch formats kubectl and client libraries send: JSON merge patch (RFC 7386), strategic
 * merge patch (merge patch plus list merge keys and `$patch` directives, enough for metadata and
 * status), and JSON patch (RFC 6902). Errors carry PATCH_* codes; the server maps them to 4xx.
 */
import { isDeepStrictEqual } from 'node:util';
import type { AmbitError } from '../../errors.js';
import { apiServerError } from './errors.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

export type PatchType = 'merge' | 'strategic' | 'json';

export const PATCH_CONTENT_TYPES: Record<string, PatchType> = {
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'strategic',
  'application/json-patch+json': 'json',
};

const isObject = (v: unknown): v is JsonObject => v !== null && typeof v === 'object' && !Array.isArray(v);

export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Merge keys of the lists Kubernetes' strategic merge patch merges element-wise (by field name). */
const MERGE_KEYS: Record<string, string> = {
  conditions: 'type',
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  containerStatuses: 'name',
  initContainerStatuses: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  env: 'name',
  imagePullSecrets: 'name',
  podIPs: 'ip',
  hostIPs: 'ip',
  addresses: 'type',
  taints: 'key',
};
/** Primitive lists SMP merges as sets instead of replacing. */
const SET_LISTS = new Set(['finalizers']);

function strategicList(field: string, target: Json | undefined, patch: Json[]): Json[] {
  const current = Array.isArray(target) ? target : [];
  if (SET_LISTS.has(field) && patch.every((p) => typeof p !== 'object')) {
    const out = [...current];
    for (const p of patch) if (!out.some((c) => isDeepStrictEqual(c, p))) out.push(p);
    return out;
  }
  const key = MERGE_KEYS[field];
  if (!key || !patch.every(isObject)) return structuredClone(patch);
  if (patch.some((p) => isObject(p) && p['$patch'] === 'replace')) {
    return patch
      .filter((p) => !(isObject(p) && p['$patch'] === 'replace'))
      .map((p) => strategicMergePatch(undefined, p));
  }
  const out = [...current];
  for (const p of patch as JsonObject[]) {
    const idx = out.findIndex((c) => isObject(c) && isDeepStrictEqual(c[key], p[key]));
    if (p['$patch'] === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
    } else if (idx >= 0) out[idx] = strategicMergePatch(out[idx], p);
    else out.push(strategicMergePatch(undefined, p));
  }
  return out;
}

export function strategicMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const directive = patch['$patch'];
  if (directive === 'delete') return null;
  const base: JsonObject = directive === 'replace' || !isObject(target) ? {} : { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) delete base[k];
    else if (Array.isArray(v)) base[k] = strategicList(k, base[k], v);
    else if (isObject(v)) {
      const merged = strategicMergePatch(base[k], v);
      if (merged === null) delete base[k];
      else base[k] = merged;
    } else base[k] = v;
  }
  return base;
}

function patchError(message: string): AmbitError {
  return apiServerError('PATCH_FAILED', message);
}

/** RFC 6901 pointer to its unescaped tokens. */
function pointer(path: unknown): string[] {
  if (typeof path !== 'string' || (path !== '' && !path.startsWith('/')))
    throw apiServerError('PATCH_MALFORMED', `invalid JSON pointer ${JSON.stringify(path)}`);
  if (path === '') return [];
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, tokens: string[], op: string): { parent: Json; last: string } {
  let cur: Json = doc;
  for (const t of tokens.slice(0, -1)) {
    const next: Json | undefined = Array.isArray(cur) ? cur[Number(t)] : isObject(cur) ? cur[t] : undefined;
    if (next === undefined)
      throw patchError(`${op} operation does not apply: doc is missing path: /${tokens.join('/')}`);
    cur = next;
  }
  return { parent: cur, last: tokens[tokens.length - 1]! };
}

function arrayIndex(arr: Json[], token: string, forAdd: boolean): number {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw patchError(`invalid array index "${token}"`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) throw patchError(`array index ${i} out of bounds`);
  return i;
}

function getAt(doc: Json, tokens: string[], op: string): Json {
  if (tokens.length === 0) return doc;
  const { parent, last } = parentOf(doc, tokens, op);
  const v = Array.isArray(parent)
    ? parent[arrayIndex(parent, last, false)]
    : isObject(parent)
      ? parent[last]
      : undefined;
  if (v === undefined)
    throw patchError(`${op} operation does not apply: doc is missing path: /${tokens.join('/')}`);
  return v;
}

function removeAt(doc: Json, tokens: string[], op: string): Json {
  getAt(doc, tokens, op);
  const { parent, last } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, last, false), 1)[0]!;
  const obj = parent as JsonObject;
  const v = obj[last]!;
  delete obj[last];
  return v;
}

/** Returns the new document; `doc` itself may be modified. */
function addAt(doc: Json, tokens: string[], value: Json, op: string, replace: boolean): Json {
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, last, !replace);
    parent.splice(i, replace ? 1 : 0, value);
  } else if (isObject(parent)) {
    if (replace && !(last in parent))
      throw patchError(`replace operation does not apply: doc is missing key: /${tokens.join('/')}`);
    parent[last] = value;
  } else
    throw patchError(`${op} operation does not apply: parent of /${tokens.join('/')} is not a container`);
  return doc;
}

export function jsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops))
    throw apiServerError('PATCH_MALFORMED', 'a JSON patch must be an array of operations');
  let doc = structuredClone(target);
  for (const raw of ops) {
    if (!isObject(raw))
      throw apiServerError('PATCH_MALFORMED', 'each JSON patch operation must be an object');
    const op = raw['op'];
    const path = pointer(raw['path']);
    const needsValue = op === 'add' || op === 'replace' || op === 'test';
    if (needsValue && !('value' in raw))
      throw apiServerError('PATCH_MALFORMED', `${op} operation needs a "value"`);
    const value = raw['value'] as Json;
    switch (op) {
      case 'add':
        doc = addAt(doc, path, structuredClone(value), op, false);
        break;
      case 'replace':
        doc = addAt(doc, path, structuredClone(value), op, true);
        break;
      case 'remove':
        removeAt(doc, path, op);
        break;
      case 'move': {
        const moved = removeAt(doc, pointer(raw['from']), op);
        doc = addAt(doc, path, moved, op, false);
        break;
      }
      case 'copy':
        doc = addAt(doc, path, structuredClone(getAt(doc, pointer(raw['from']), op)), op, false);
        break;
      case 'test':
        if (!isDeepStrictEqual(getAt(doc, path, op), value))
          throw patchError(`testing value /${path.join('/')} failed`);
        break;
      default:
        throw apiServerError('PATCH_MALFORMED', `unknown JSON patch operation ${JSON.stringify(op)}`);
    }
  }
  return doc;
}

export function applyPatch(type: PatchType, target: Json, patch: Json): Json {
  if (type === 'json') return jsonPatch(target, patch);
  if (!isObject(patch)) throw apiServerError('PATCH_MALFORMED', 'a merge patch must be a JSON object');
  return type === 'merge' ? mergePatch(target, patch) : strategicMergePatch(target, patch);
}
