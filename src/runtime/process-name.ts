/**
 * The name a long-running process shows in `ss -p`, `ps -e`, `top` and `pgrep`: the kernel's `comm`
 * of its main thread, which for `ambit ztunnel` would otherwise be `node`. Each role takes the name
 * of its Istio counterpart, so a node reads as an Istio node does (the seed's `ss -ntlp` shows the
 * pod's listeners owned by `("ztunnel",pid=...)`).
 *
 * Only `comm` changes, by writing /proc/self/comm: `process.title` would also overwrite the command
 * line, which the lab reads to find its components (and a reader of `ps -f` wants the arguments).
 */
import { writeFileSync } from 'node:fs';
import { errorMessage } from '../errors.js';
import { logger } from './log.js';

/** Role -> name; the kernel keeps the first 15 bytes of a comm. */
export const PROCESS_NAMES = {
  ztunnel: 'ztunnel',
  /** Istio's node agent runs as `install-cni` in the istio-cni DaemonSet. */
  agent: 'install-cni',
  /** istiod's binary, which serves the CA and xDS as ambit's control plane does. */
  controlPlane: 'pilot-discovery',
  /**
   * The lab's stand-ins for the Kubernetes API server and the kubelet keep names of their own: on a
   * machine that also runs a real node, `pgrep -x kubelet` (or a `pkill`) must find the real one only.
   */
  labApiserver: 'ambit-apiserver',
  labKubelet: 'ambit-kubelet',
} as const;

export type ProcessRole = keyof typeof PROCESS_NAMES;

/** Renames this process's main thread; where /proc is not writable it keeps its name and says so. */
export function nameProcess(role: ProcessRole, commPath = '/proc/self/comm'): void {
  try {
    writeFileSync(commPath, PROCESS_NAMES[role]);
  } catch (err) {
    logger('ambit::process').debug('cannot set the process name', {
      name: PROCESS_NAMES[role],
      error: errorMessage(err),
    });
  }
}
