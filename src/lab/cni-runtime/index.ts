export { buildCniArgs, buildCniEnv, buildPluginConfig, validateConfList } from './args.js';
export {
  CNI_ERROR_CODES,
  type CniErrorBody,
  CniPluginError,
  parseCniErrorBody,
  pluginFailure,
} from './errors.js';
export { DEFAULT_CNI_PATH, findPlugin } from './exec.js';
export { CniDelError, CniRuntime, type CniRuntimeOptions } from './runtime.js';
export type * from './types.js';
