/**
 * Label and field selectors in the syntax of the Kubernetes API (`a=b,c!=d,e in (f,g),!h`).
 * Parse errors are SELECTOR_INVALID errors; the HTTP layer turns them into 400 BadRequest.
 */
import { apiServerError } from './errors.js';

export type LabelRequirement =
  | { op: 'exists' | '!exists'; key: string }
  | { op: '=' | '!='; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'gt' | 'lt'; key: string; value: number };

export type FieldRequirement = { op: '=' | '!='; key: string; value: string };

export type Labels = Record<string, string> | undefined;

const KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function fail(selector: string, why: string): never {
  throw apiServerError('SELECTOR_INVALID', `unable to parse requirement: ${why} (in selector "${selector}")`);
}

function checkKey(selector: string, key: string): string {
  if (!KEY.test(key) || key.length > 316) fail(selector, `invalid label key "${key}"`);
  return key;
}

function checkValue(selector: string, value: string): string {
  if (!VALUE.test(value) || value.length > 63) fail(selector, `invalid label value "${value}"`);
  return value;
}

/** Splits on commas that are not inside a parenthesised set. */
function splitTopLevel(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0) fail(selector, 'unbalanced ")"');
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  if (depth !== 0) fail(selector, 'unbalanced "("');
  parts.push(current);
  return parts;
}

function parseRequirement(selector: string, text: string): LabelRequirement {
  const t = text.trim();
  if (t === '') fail(selector, 'empty requirement');
  if (t.startsWith('!')) return { op: '!exists', key: checkKey(selector, t.slice(1).trim()) };
  const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(t);
  if (set) {
    const values = set[3]!
      .split(',')
      .map((v) => v.trim())
      .map((v) => checkValue(selector, v));
    return { op: set[2] as 'in' | 'notin', key: checkKey(selector, set[1]!), values };
  }
  const cmp = /^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*)$/.exec(t);
  if (cmp) {
    const key = checkKey(selector, cmp[1]!);
    const raw = cmp[3]!.trim();
    if (cmp[2] === '>' || cmp[2] === '<') {
      if (!/^-?\d+$/.test(raw)) fail(selector, `"${raw}" is not an integer`);
      return { op: cmp[2] === '>' ? 'gt' : 'lt', key, value: Number(raw) };
    }
    return { op: cmp[2] === '!=' ? '!=' : '=', key, value: checkValue(selector, raw) };
  }
  if (/\s/.test(t)) fail(selector, `unknown operator in "${t}"`);
  return { op: 'exists', key: checkKey(selector, t) };
}

export function parseLabelSelector(selector: string | undefined | null): LabelRequirement[] {
  if (!selector || selector.trim() === '') return [];
  return splitTopLevel(selector).map((part) => parseRequirement(selector, part));
}

export function matchesLabels(reqs: readonly LabelRequirement[], labels: Labels): boolean {
  const l = labels ?? {};
  return reqs.every((r) => requirementHolds(r, l));
}

function requirementHolds(r: LabelRequirement, l: Record<string, string>): boolean {
  const has = Object.hasOwn(l, r.key);
  const v = l[r.key];
  switch (r.op) {
    case 'exists':
      return has;
    case '!exists':
      return !has;
    case '=':
      return has && v === r.value;
    case '!=':
      return !has || v !== r.value;
    case 'in':
      return has && r.values.includes(v!);
    case 'notin':
      return !has || !r.values.includes(v!);
    case 'gt':
    case 'lt': {
      if (!has || !/^-?\d+$/.test(v!)) return false;
      return r.op === 'gt' ? Number(v) > r.value : Number(v) < r.value;
    }
  }
}

/** Field selectors escape `\`, `,` and `=` with a backslash. */
function splitUnescaped(text: string, sep: string): string[] {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\' && i + 1 < text.length) {
      current += ch + text[i + 1];
      i++;
    } else if (ch === sep) {
      out.push(current);
      current = '';
    } else current += ch;
  }
  out.push(current);
  return out;
}

const unescapeField = (s: string): string => s.replace(/\\(.)/g, '$1');

export function parseFieldSelector(selector: string | undefined | null): FieldRequirement[] {
  if (!selector || selector.trim() === '') return [];
  return splitUnescaped(selector, ',').map((part) => {
    const m = /^((?:[^=!\\]|\\.)+?)\s*(==|!=|=)(.*)$/.exec(part.trim());
    if (!m)
      throw apiServerError('SELECTOR_INVALID', `invalid selector: '${selector}'; can't understand '${part}'`);
    return {
      op: m[2] === '!=' ? '!=' : '=',
      key: unescapeField(m[1]!.trim()),
      value: unescapeField(m[3]!.trim()),
    };
  });
}

/** A field's value as a string, the way the real server's field sets render it (missing = ""). */
export function fieldValue(obj: unknown, path: string): string {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'object' ? JSON.stringify(cur) : String(cur);
}

export function matchesFields(reqs: readonly FieldRequirement[], obj: unknown): boolean {
  return reqs.every((r) => (fieldValue(obj, r.key) === r.value) === (r.op === '='));
}
