/**
 * Which file in the CNI config dir is "the" network config, and how ambit-cni is spliced into it
 * (istio-cni's insertCNIConfig): appended last to a `.conflist`, or a lone `.conf` wrapped into one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../../errors.js';
import { PLUGIN_TYPE } from '../names.js';
import { installError } from './errors.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

/** A parsed config file: `list` for `.conflist` content, `single` for a `.conf` plugin. */
export type ConfigDoc = { kind: 'list'; doc: Obj & { plugins: Obj[] } } | { kind: 'single'; doc: Obj };

export function parseConfigFile(name: string, text: string): ConfigDoc {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw installError('CNI_CONFIG_INVALID', `${name}: not JSON: ${errorMessage(err)}`);
  }
  if (!isObj(value)) throw installError('CNI_CONFIG_INVALID', `${name}: not a JSON object`);
  if (name.endsWith('.conflist')) {
    const plugins = value['plugins'];
    if (!Array.isArray(plugins) || plugins.length === 0 || !plugins.every(isObj)) {
      throw installError('CNI_CONFIG_INVALID', `${name}: 'plugins' must be a non-empty array of objects`);
    }
    return { kind: 'list', doc: value as Obj & { plugins: Obj[] } };
  }
  if (typeof value['type'] !== 'string' || value['type'] === '') {
    throw installError('CNI_CONFIG_INVALID', `${name}: a .conf must have a 'type'`);
  }
  return { kind: 'single', doc: value };
}

/** Valid `*.conf`/`*.conflist` names in `dir`, lexicographic: the first is what the runtime uses. */
export function configFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw installError('CNI_CONF_DIR_UNREADABLE', `cannot read CNI config dir ${dir}: ${errorMessage(err)}`);
  }
  return names
    .filter((n) => n.endsWith('.conf') || n.endsWith('.conflist'))
    .sort()
    .filter((n) => {
      try {
        parseConfigFile(n, readFileSync(join(dir, n), 'utf8'));
        return true;
      } catch {
        return false;
      }
    });
}

/** The installed entry: Istio's keys, `dns`/`ipam` always present, `exclude_namespaces` null when empty. */
export interface PluginEntryOptions {
  agentRunDir: string;
  excludeNamespaces: readonly string[];
  enablementSelectors?: unknown;
  podNamespace: string;
  pluginLogLevel: string;
  enableAmbientDetectionRetry: boolean;
}

export function pluginEntry(o: PluginEntryOptions): Obj {
  const entry: Obj = {
    ambient_enabled: true,
    cni_agent_run_dir: o.agentRunDir,
    dns: {},
    enable_ambient_detection_retry: o.enableAmbientDetectionRetry,
    exclude_namespaces: o.excludeNamespaces.length > 0 ? [...o.excludeNamespaces] : null,
    ipam: {},
    name: PLUGIN_TYPE,
    plugin_log_level: o.pluginLogLevel,
    pod_namespace: o.podNamespace,
    type: PLUGIN_TYPE,
  };
  if (o.enablementSelectors !== undefined) entry['enablement_selectors'] = o.enablementSelectors;
  return entry;
}

const isOurs = (p: unknown) => isObj(p) && p['type'] === PLUGIN_TYPE;

/** The config list with our entry last (any earlier ambit-cni entry removed), never mutating `existing`. */
export function insertPlugin(existing: ConfigDoc, entry: Obj): Obj {
  const ours = { ...entry };
  delete ours['cniVersion'];
  if (existing.kind === 'single') {
    const primary = { ...existing.doc };
    delete primary['cniVersion'];
    return { cniVersion: '0.3.1', name: 'k8s-pod-network', plugins: [primary, ours] };
  }
  return { ...existing.doc, plugins: [...existing.doc.plugins.filter((p) => !isOurs(p)), ours] };
}

/** The list without ambit-cni entries; undefined when there was none (nothing to write). */
export function removePlugin(existing: ConfigDoc): Obj | undefined {
  if (existing.kind !== 'list' || !existing.doc.plugins.some(isOurs)) return undefined;
  return { ...existing.doc, plugins: existing.doc.plugins.filter((p) => !isOurs(p)) };
}

/** Our entry as found in a list, for the validity check. */
export function installedEntry(existing: ConfigDoc): Obj | undefined {
  return existing.kind === 'list' ? existing.doc.plugins.find(isOurs) : undefined;
}
