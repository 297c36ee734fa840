/**
 * CNI_ARGS (`K=V;K=V`) read with libcni's LoadArgs rules: every pair must be `key=value`, and a key
 * the plugin does not know is an error unless the runtime added `IgnoreUnknown=1` (containerd does).
 */

import { parseBool } from '../runtime/options.js';
import { cniInputError } from './errors.js';

export interface K8sArgs {
  K8S_POD_NAME: string;
  K8S_POD_NAMESPACE: string;
  K8S_POD_INFRA_CONTAINER_ID: string;
  K8S_POD_UID: string;
}

const KNOWN = new Set<string>([
  'IgnoreUnknown',
  'K8S_POD_NAME',
  'K8S_POD_NAMESPACE',
  'K8S_POD_INFRA_CONTAINER_ID',
  'K8S_POD_UID',
]);

/** Go's UnmarshallableBool: 1/true/0/false, any case. */
function unmarshalBool(key: string, value: string): boolean {
  const b = parseBool(value);
  if (b !== undefined) return b;
  throw cniInputError(
    'CNI_ARGS_INVALID',
    `CNI_ARGS: ${key} must be a boolean (1/true/0/false), got '${value}'`,
  );
}

export function parseCniArgs(text: string | undefined): K8sArgs {
  const args: K8sArgs = {
    K8S_POD_NAME: '',
    K8S_POD_NAMESPACE: '',
    K8S_POD_INFRA_CONTAINER_ID: '',
    K8S_POD_UID: '',
  };
  if (!text) return args;
  const pairs = text.split(';').map((pair) => {
    const kv = pair.split('=');
    if (kv.length !== 2)
      throw cniInputError('CNI_ARGS_INVALID', `CNI_ARGS: invalid pair '${pair}' (want KEY=VALUE)`);
    return [kv[0]!, kv[1]!] as const;
  });
  const ignoreUnknown = pairs.some(([k, v]) => k === 'IgnoreUnknown' && unmarshalBool(k, v));
  for (const [key, value] of pairs) {
    if (key === 'IgnoreUnknown') continue;
    if (KNOWN.has(key)) args[key as keyof K8sArgs] = value;
    else if (!ignoreUnknown) {
      throw cniInputError(
        'CNI_ARGS_INVALID',
        `CNI_ARGS: unknown key '${key}' (the runtime must send IgnoreUnknown=1 to allow extra keys)`,
      );
    }
  }
  return args;
}
