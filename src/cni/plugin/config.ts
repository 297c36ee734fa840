/**
 * The plugin's stdin: the standard NetConf keys (`cniVersion`, `name`, `type`, `prevResult`, ...)
 * plus istio-cni's own keys, kept under Istio's names so a conflist written for one works for the other.
 */
import { errorMessage } from '../../errors.js';
import { DEFAULT_AGENT_RUN_DIR } from '../../node/contract.js';
import { DEFAULT_AGENT_NAMESPACE, DEFAULT_EXCLUDE_NAMESPACES, SUPPORTED_VERSIONS } from '../names.js';
import {
  DEFAULT_ENABLEMENT_SELECTORS,
  type EnablementSelector,
  parseEnablementSelectors,
} from '../selector.js';
import { CniCode, CniError } from './errors.js';

export type CniResult = Record<string, unknown> & { cniVersion?: string };

export interface PluginConfig {
  cniVersion: string;
  name: string;
  type: string;
  prevResult: CniResult | undefined;
  pluginLogLevel: string;
  agentRunDir: string;
  /** ambit is ambient-only, so an absent `ambient_enabled` means true (Istio's Go zero value is false). */
  ambientEnabled: boolean;
  enablementSelectors: readonly EnablementSelector[];
  excludeNamespaces: readonly string[];
  podNamespace: string;
  enableAmbientDetectionRetry: boolean;
  /** GC input: attachments the runtime still knows about. */
  validAttachments: { containerID: string; ifname: string }[] | undefined;
  raw: Record<string, unknown>;
}

/** Decodes stdin: not JSON or not an object -> code 6. */
export function decodeConfig(stdin: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniCode.DecodeFailure, `failed to decode network configuration: ${errorMessage(err)}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new CniError(CniCode.DecodeFailure, 'failed to decode network configuration: not a JSON object');
  }
  return value as Record<string, unknown>;
}

function invalid(msg: string): CniError {
  return new CniError(CniCode.InvalidConfig, `invalid network configuration: ${msg}`);
}

function optional<T>(raw: Record<string, unknown>, key: string, kind: 'string' | 'boolean', fallback: T): T {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== kind) throw invalid(`'${key}' must be a ${kind}, got ${JSON.stringify(v)}`);
  return v as T;
}

function required(raw: Record<string, unknown>, key: string): string {
  const v = raw[key];
  if (typeof v !== 'string' || v === '') throw invalid(`'${key}' must be a non-empty string`);
  return v;
}

/** The (from spec 1.1) `cni.dev/valid-attachments`, or its older spelling `cni.dev/attachments`. */
function attachments(raw: Record<string, unknown>): PluginConfig['validAttachments'] {
  const key = 'cni.dev/valid-attachments' in raw ? 'cni.dev/valid-attachments' : 'cni.dev/attachments';
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid(`'${key}' must be an array`);
  return v.map((a, i) => {
    const e = a as Record<string, unknown> | null;
    if (!e || typeof e['containerID'] !== 'string' || typeof e['ifname'] !== 'string') {
      throw invalid(`'${key}[${i}]' must be {containerID, ifname} strings`);
    }
    return { containerID: e['containerID'], ifname: e['ifname'] };
  });
}

export function parseConfig(raw: Record<string, unknown>): PluginConfig {
  const cniVersion = required(raw, 'cniVersion');
  if (!SUPPORTED_VERSIONS.includes(cniVersion)) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `incompatible CNI versions: config is ${cniVersion}, plugin supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const prev = raw['prevResult'];
  if (prev !== undefined && prev !== null && (typeof prev !== 'object' || Array.isArray(prev))) {
    throw invalid("'prevResult' must be an object");
  }
  let selectors: readonly EnablementSelector[] = DEFAULT_ENABLEMENT_SELECTORS;
  if (raw['enablement_selectors'] !== undefined && raw['enablement_selectors'] !== null) {
    try {
      selectors = parseEnablementSelectors(raw['enablement_selectors']);
    } catch (err) {
      throw invalid(errorMessage(err));
    }
  }
  let exclude: readonly string[] = DEFAULT_EXCLUDE_NAMESPACES;
  if ('exclude_namespaces' in raw) {
    const v = raw['exclude_namespaces'];
    if (v !== null && (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))) {
      throw invalid("'exclude_namespaces' must be an array of strings or null");
    }
    exclude = (v as string[] | null) ?? [];
  }
  return {
    cniVersion,
    name: required(raw, 'name'),
    type: required(raw, 'type'),
    prevResult: (prev ?? undefined) as CniResult | undefined,
    pluginLogLevel: optional(raw, 'plugin_log_level', 'string', 'info'),
    agentRunDir: optional(raw, 'cni_agent_run_dir', 'string', DEFAULT_AGENT_RUN_DIR) || DEFAULT_AGENT_RUN_DIR,
    ambientEnabled: optional(raw, 'ambient_enabled', 'boolean', true),
    enablementSelectors: selectors,
    excludeNamespaces: exclude,
    podNamespace: optional(raw, 'pod_namespace', 'string', DEFAULT_AGENT_NAMESPACE),
    enableAmbientDetectionRetry: optional(raw, 'enable_ambient_detection_retry', 'boolean', false),
    validAttachments: attachments(raw),
    raw,
  };
}
