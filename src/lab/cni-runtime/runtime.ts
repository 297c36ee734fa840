/**
 * A small CNI runtime, the part of containerd that libcni is: runs a conflist's plugins in order
 * for ADD (threading each result into the next plugin's `prevResult`), in reverse for DEL, and CHECK.
 */
import { AmbitError, errorMessage } from '../../errors.js';
import { buildCniEnv, buildPluginConfig, validateConfList } from './args.js';
import { CniPluginError, type CniRuntimeErrorCode } from './errors.js';
import { DEFAULT_CNI_PATH, execPlugin, findPlugin } from './exec.js';
import type {
  CniCommand,
  CniResult,
  CniSandbox,
  CniVersionInfo,
  NetworkConfigList,
  PluginConf,
} from './types.js';

export interface CniRuntimeOptions {
  /** Directories searched for plugin binaries, in order; default [/usr/lib/cni]. */
  pluginDirs?: readonly string[];
  /** Run plugins inside this network namespace (path), as a runtime on that node would. */
  inNetns?: string;
  /** Values for plugins that declare matching `capabilities`. */
  runtimeConfig?: Readonly<Record<string, unknown>>;
  /** Per plugin call; default 30 s. */
  timeoutMs?: number;
}

/** DEL ran every plugin but some failed; `errors` holds each failure in the order they ran. */
export class CniDelError extends AmbitError {
  readonly errors: Error[];

  constructor(errors: Error[]) {
    super(
      'CNI_DEL_FAILED' satisfies CniRuntimeErrorCode,
      `CNI DEL failed for ${errors.length} plugin(s): ${errors.map(errorMessage).join('; ')}`,
    );
    this.name = 'CniDelError';
    this.errors = errors;
  }
}

export class CniRuntime {
  readonly pluginDirs: readonly string[];
  readonly #inNetns: string | undefined;
  readonly #runtimeConfig: Readonly<Record<string, unknown>>;
  readonly #timeoutMs: number;

  constructor(options: CniRuntimeOptions = {}) {
    this.pluginDirs = options.pluginDirs?.length ? [...options.pluginDirs] : [DEFAULT_CNI_PATH];
    this.#inNetns = options.inNetns;
    this.#runtimeConfig = options.runtimeConfig ?? {};
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Runs ADD through the chain and returns the last plugin's result. */
  async add(conflist: NetworkConfigList, sandbox: CniSandbox): Promise<CniResult> {
    const list = validateConfList(conflist);
    let prev: CniResult | undefined;
    for (const plugin of list.plugins) {
      const stdout = await this.#invoke('ADD', list, plugin, sandbox, prev);
      prev = parseResult(plugin.type, stdout);
    }
    return prev!;
  }

  /**
   * Runs DEL through the chain in reverse with the final ADD result as `prevResult`. Best effort:
   * every plugin runs even when an earlier one failed; the failures are thrown together at the end.
   */
  async del(conflist: NetworkConfigList, sandbox: CniSandbox, prevResult?: CniResult): Promise<void> {
    const list = validateConfList(conflist);
    const errors: Error[] = [];
    for (const plugin of [...list.plugins].reverse()) {
      try {
        await this.#invoke('DEL', list, plugin, sandbox, prevResult);
      } catch (err) {
        errors.push(err instanceof Error ? err : new Error(String(err)));
      }
    }
    if (errors.length > 0) throw new CniDelError(errors);
  }

  /** Runs CHECK through the chain with the final ADD result; the first failure is thrown. */
  async check(conflist: NetworkConfigList, sandbox: CniSandbox, prevResult: CniResult): Promise<void> {
    const list = validateConfList(conflist);
    if (list.disableCheck) return;
    for (const plugin of list.plugins) await this.#invoke('CHECK', list, plugin, sandbox, prevResult);
  }

  /** The versions a plugin binary supports (CNI_COMMAND=VERSION). */
  async version(type: string): Promise<CniVersionInfo> {
    const binary = findPlugin(type, this.pluginDirs);
    const stdout = await execPlugin({
      plugin: type,
      binary,
      command: 'VERSION',
      env: buildCniEnv('VERSION', undefined, this.pluginDirs),
      stdin: JSON.stringify({ cniVersion: '1.0.0' }),
      inNetns: this.#inNetns,
      timeoutMs: this.#timeoutMs,
    });
    const info = parseJson(type, 'VERSION', stdout) as Partial<CniVersionInfo>;
    if (typeof info.cniVersion !== 'string' || !Array.isArray(info.supportedVersions)) {
      throw new CniPluginError({
        plugin: type,
        command: 'VERSION',
        msg: 'printed no version info',
        exitCode: 0,
      });
    }
    return info as CniVersionInfo;
  }

  #invoke(
    command: CniCommand,
    list: NetworkConfigList,
    plugin: PluginConf,
    sandbox: CniSandbox,
    prev: CniResult | undefined,
  ): Promise<string> {
    const binary = findPlugin(plugin.type, this.pluginDirs);
    return execPlugin({
      plugin: plugin.type,
      binary,
      command,
      env: buildCniEnv(command, sandbox, this.pluginDirs),
      stdin: JSON.stringify(buildPluginConfig(list, plugin, prev, this.#runtimeConfig)),
      inNetns: this.#inNetns,
      timeoutMs: this.#timeoutMs,
    });
  }
}

function parseJson(plugin: string, command: CniCommand, stdout: string): unknown {
  try {
    return JSON.parse(stdout);
  } catch {
    const shown = stdout.length > 200 ? `${stdout.slice(0, 200)}...` : stdout;
    throw new CniPluginError({
      plugin,
      command,
      msg: `printed invalid JSON on success: ${JSON.stringify(shown)}`,
      exitCode: 0,
    });
  }
}

function parseResult(plugin: string, stdout: string): CniResult {
  const value = parseJson(plugin, 'ADD', stdout);
  if (!value || typeof value !== 'object' || typeof (value as CniResult).cniVersion !== 'string') {
    throw new CniPluginError({
      plugin,
      command: 'ADD',
      msg: 'printed no CNI result (missing cniVersion)',
      exitCode: 0,
    });
  }
  return value as CniResult;
}
