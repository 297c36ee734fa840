/**
 * Feeds a WorkloadStore from a local YAML file and reloads it when the file changes. A file that
 * fails to parse is reported and the previous state is kept: a typo must not empty the mesh.
 */
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { errorMessage } from '../errors.js';
import { logger } from '../runtime/log.js';
import { parseLocalConfig } from './local-config.js';
import type { WorkloadStore } from './store.js';

const log = logger('ztunnel::state');

export class LocalFileSource {
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The last load error, cleared by a good load (for /config_dump and tests). */
  lastError: Error | undefined;

  constructor(
    readonly path: string,
    readonly store: WorkloadStore,
  ) {}

  /** Loads once; throws on a bad file (at start-up a bad file is fatal, as it is for ztunnel). */
  load(): void {
    const snapshot = parseLocalConfig(readFileSync(this.path, 'utf8'), this.path);
    this.store.replaceAll(snapshot);
    this.lastError = undefined;
    log.info('loaded local workload config', {
      path: this.path,
      workloads: snapshot.workloads.length,
      services: snapshot.services.length,
      policies: snapshot.policies.length,
    });
  }

  /** Reloads on change; watches the directory so editors that replace the file are seen too. */
  watch(debounceMs = 50): void {
    if (this.#watcher) return;
    const name = basename(this.path);
    this.#watcher = watch(dirname(this.path), (_event, file) => {
      if (file !== null && file !== name) return;
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.#reload(), debounceMs);
    });
  }

  #reload(): void {
    try {
      this.load();
    } catch (err) {
      this.lastError = err as Error;
      log.error('rejected local workload config, keeping the previous state', { error: errorMessage(err) });
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}
