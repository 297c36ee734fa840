/**
 * istio-cni's installer loop for ambit: copy the bundled plugin into the CNI bin dirs, write the
 * plugin's kubeconfig, splice ambit-cni into the highest-priority network config, then watch those
 * places and re-apply whenever another component rewrites them. `cleanup()` undoes all three.
 */

import {
  existsSync,
  type FSWatcher,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  watch,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { type AmbitError, errorMessage } from '../../errors.js';
import { logger } from '../../runtime/log.js';
import { type KubeTarget, renderPluginKubeconfig } from '../kubeconfig.js';
import { PLUGIN_KUBECONFIG_NAME, PLUGIN_TYPE } from '../names.js';
import { canonicalJson } from './canonical-json.js';
import {
  configFiles,
  insertPlugin,
  installedEntry,
  type PluginEntryOptions,
  parseConfigFile,
  pluginEntry,
  removePlugin,
} from './conflist.js';
import { type InstallErrorCode, installError } from './errors.js';
import { removeStaleTemps, writeFileAtomic } from './files.js';

export interface InstallerOptions extends PluginEntryOptions {
  confDir: string;
  binDirs: readonly string[];
  /** The bundled plugin (dist/ambit-cni) copied as `ambit-cni` into each bin dir. */
  pluginBinary: string;
  /** Where the API server is and the credentials the plugin uses; read again on every pass (token rotation). */
  kubeTarget: () => KubeTarget;
  /** Extra files whose change means "re-apply" (the kubeconfig source, the service-account token). */
  watchFiles?: readonly string[];
  kubeconfigMode?: number;
  /** Default `<agentRunDir>/ambit-cni-kubeconfig`; differs only where the run dir is mounted elsewhere. */
  kubeconfigPath?: string;
}

const log = logger('ambit::cni::install');
const FAST_LOOP_MS = 5_000;
const FAST_LOOP_SLEEP_MS = 1_000;
const FIGHT_WARN_AFTER = 5;

export class CniInstaller {
  readonly #o: InstallerOptions;
  /** The config file we spliced into last; a different highest-priority file means re-install. */
  #written: string | undefined;
  #ready = false;

  constructor(options: InstallerOptions) {
    this.#o = options;
  }

  get ready(): boolean {
    return this.#ready;
  }

  get kubeconfigPath(): string {
    return this.#o.kubeconfigPath ?? join(this.#o.agentRunDir, PLUGIN_KUBECONFIG_NAME);
  }

  /** One full pass; returns the config file that now holds ambit-cni. */
  installOnce(): string {
    this.#copyBinaries();
    this.#writeKubeconfig();
    if (this.#invalidReason() !== undefined) this.#written = this.#spliceConfig();
    return this.#written!;
  }

  /** Why the current state needs a re-install, or undefined when it is in place. */
  #invalidReason(): string | undefined {
    const files = configFiles(this.#o.confDir);
    const first = files[0];
    if (!first) return 'no network config file';
    if (this.#written === undefined) return 'first run';
    if (join(this.#o.confDir, first) !== this.#written)
      return `${first} now has priority over ${this.#written}`;
    const entry = installedEntry(parseConfigFile(first, readFileSync(this.#written, 'utf8')));
    if (!entry) return `${PLUGIN_TYPE} entry missing from ${first}`;
    const want = pluginEntry(this.#o);
    if (!isDeepStrictEqual(entry, JSON.parse(JSON.stringify(want)))) {
      return `${PLUGIN_TYPE} entry in ${first} differs from ours`;
    }
    for (const dir of this.#o.binDirs)
      if (!existsSync(join(dir, PLUGIN_TYPE))) return `binary missing from ${dir}`;
    if (!existsSync(this.kubeconfigPath)) return 'kubeconfig missing';
    return undefined;
  }

  #copyBinaries(): void {
    const data = readFileSync(this.#o.pluginBinary);
    for (const dir of this.#o.binDirs) {
      const target = join(dir, PLUGIN_TYPE);
      removeStaleTemps(dir, PLUGIN_TYPE);
      if (existsSync(target) && readFileSync(target).equals(data)) continue;
      writeFileAtomic(target, data, 0o755);
      log.info('installed CNI plugin binary', { path: target });
    }
  }

  #writeKubeconfig(): void {
    const text = renderPluginKubeconfig(this.#o.kubeTarget());
    const path = this.kubeconfigPath;
    const mode = this.#o.kubeconfigMode ?? 0o600;
    if (existsSync(path) && readFileSync(path, 'utf8') === text && (statSync(path).mode & 0o777) === mode)
      return;
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    writeFileAtomic(path, text, mode);
    log.info('wrote plugin kubeconfig', { path });
  }

  #spliceConfig(): string {
    const first = configFiles(this.#o.confDir)[0];
    if (!first) {
      throw installError(
        'CNI_NO_PRIMARY_CONFIG',
        `no valid .conf/.conflist in ${this.#o.confDir} yet (waiting for the primary CNI)`,
      );
    }
    const path = join(this.#o.confDir, first);
    const existing = parseConfigFile(first, readFileSync(path, 'utf8'));
    const mode = statSync(path).mode & 0o777;
    writeFileAtomic(path, canonicalJson(insertPlugin(existing, pluginEntry(this.#o))), mode);
    if (existing.kind === 'single') {
      const listPath = `${path}list`;
      renameSync(path, listPath);
      log.info('wrapped network config into a list and added ambit-cni', { from: path, to: listPath });
      return listPath;
    }
    log.info('added ambit-cni to network config', { path });
    return path;
  }

  /**
   * Installs, then re-installs after every change in the watched places until `signal` aborts.
   * Waits (watching) when no primary config exists yet.
   */
  async run(signal: AbortSignal): Promise<void> {
    let lastLoop = 0;
    let fastLoops = 0;
    while (!signal.aborted) {
      const now = Date.now();
      if (now - lastLoop < FAST_LOOP_MS) {
        fastLoops++;
        if (fastLoops > FIGHT_WARN_AFTER) {
          log.warn(
            're-installing over and over: another component keeps rewriting the CNI config (for Cilium set cni.exclusive=false)',
            {
              loops: fastLoops,
            },
          );
        }
        await sleep(FAST_LOOP_SLEEP_MS, signal);
      } else fastLoops = 0;
      lastLoop = Date.now();
      this.#ready = false;
      const watcher = new ChangeWatcher(this.#watchPaths());
      try {
        try {
          this.installOnce();
        } catch (err) {
          if ((err as AmbitError).code !== ('CNI_NO_PRIMARY_CONFIG' satisfies InstallErrorCode)) throw err;
          log.info(errorMessage(err));
          await watcher.next(signal);
          continue;
        }
        // Fresh watch set up before the check, so a change racing the install is not missed.
        const why = this.#invalidReason();
        if (why) {
          log.info('configuration changed during install, re-installing', { reason: why });
          continue;
        }
        this.#ready = true;
        await watcher.next(signal);
        if (!signal.aborted) log.info('change detected, checking the installation');
      } finally {
        watcher.close();
      }
    }
    this.#ready = false;
  }

  #watchPaths(): WatchSpec[] {
    const specs: WatchSpec[] = [{ dir: this.#o.confDir }];
    for (const dir of this.#o.binDirs) specs.push({ dir, name: PLUGIN_TYPE });
    for (const file of this.#o.watchFiles ?? []) specs.push({ dir: dirname(file) });
    return specs;
  }

  /** Removes ambit-cni from every config list (other plugins and file mode untouched), the kubeconfig and the binaries. */
  cleanup(): void {
    for (const name of configFiles(this.#o.confDir)) {
      const path = join(this.#o.confDir, name);
      const stripped = removePlugin(parseConfigFile(name, readFileSync(path, 'utf8')));
      if (!stripped) continue;
      writeFileAtomic(path, canonicalJson(stripped), statSync(path).mode & 0o777);
      log.info('removed ambit-cni from network config', { path });
    }
    for (const path of [this.kubeconfigPath, ...this.#o.binDirs.map((d) => join(d, PLUGIN_TYPE))]) {
      try {
        unlinkSync(path);
        log.info('removed', { path });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    this.#written = undefined;
    this.#ready = false;
  }
}

interface WatchSpec {
  dir: string;
  /** Only events for this file name count; undefined = any change in the dir. */
  name?: string;
}

/** One-shot "something changed" over several directories (atomic renames break per-file watches). */
class ChangeWatcher {
  readonly #watchers: FSWatcher[] = [];
  #changed = false;
  #wake: (() => void) | undefined;

  constructor(specs: readonly WatchSpec[]) {
    for (const spec of specs) {
      try {
        const w = watch(spec.dir, { persistent: true }, (_event, file) => {
          if (spec.name !== undefined && file !== null && file !== spec.name) return;
          this.#changed = true;
          this.#wake?.();
        });
        w.on('error', () => this.#fire());
        this.#watchers.push(w);
      } catch (err) {
        log.warn('cannot watch directory', { dir: spec.dir, error: errorMessage(err) });
      }
    }
  }

  #fire(): void {
    this.#changed = true;
    this.#wake?.();
  }

  next(signal: AbortSignal): Promise<void> {
    if (this.#changed || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#wake = done;
      signal.addEventListener('abort', done);
    });
  }

  close(): void {
    for (const w of this.#watchers) w.close();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
