/**
 * The API server's state file: objects, the resourceVersion counter and the credentials, as one
 * JSON document. Writes are debounced (a burst of changes costs one write) and atomic (temp file,
 * fsync, rename), so a crash leaves the old or the new state, never half of one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { errorCode } from '../../errors.js';
import { apiServerError } from './errors.js';
import type { StoreSnapshot } from './store.js';
import type { ServingTls } from './tls.js';
import type { TokenSecrets } from './tokens.js';

export interface Credentials extends TokenSecrets {
  tls: ServingTls;
}

export interface StateDocument extends StoreSnapshot {
  version: 1;
  credentials: Credentials;
}

export function readStateFile(path: string): StateDocument | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw apiServerError(
      'APISERVER_STATE_CORRUPT',
      `${path} is not valid JSON; move it away to start from an empty cluster`,
      { cause: err },
    );
  }
  const d = doc as Partial<StateDocument>;
  if (d.version !== 1 || typeof d.resourceVersion !== 'number' || !Array.isArray(d.objects) || !d.credentials)
    throw apiServerError(
      'APISERVER_STATE_CORRUPT',
      `${path} is not an ambit lab API server state file; move it away to start from an empty cluster`,
    );
  return d as StateDocument;
}

function writeAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export class StateWriter {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly path: string,
    private readonly delayMs: number,
    private readonly read: () => StateDocument,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Schedules a write; calls during the delay share it. */
  schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      try {
        this.flush();
      } catch (err) {
        this.onError(err);
      }
    }, this.delayMs);
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    writeAtomically(this.path, JSON.stringify(this.read()));
  }
}
