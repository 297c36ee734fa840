/**
 * Where Istio's own ztunnel binary is, for running it in place of a node's ztunnel (the benchmark's
 * side-by-side column, the interop tests): a path given by the caller, else $ISTIO_ZTUNNEL, else
 * `istio-ztunnel` on PATH.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Istio's ztunnel binary: `flag` (named `--istio-ztunnel` in messages), else $ISTIO_ZTUNNEL, else
 * `istio-ztunnel` on PATH. Returns the path, or why there is none.
 */
export function findIstioZtunnel(flag: string | undefined): { binary: string } | { missing: string } {
  const given = flag ?? process.env['ISTIO_ZTUNNEL'];
  const from = flag !== undefined ? '--istio-ztunnel' : 'ISTIO_ZTUNNEL';
  if (given) {
    return executable(given) ? { binary: given } : { missing: `${from} ${given} is not an executable file` };
  }
  for (const dir of (process.env['PATH'] ?? '').split(delimiter).filter(Boolean)) {
    if (executable(join(dir, 'istio-ztunnel'))) return { binary: join(dir, 'istio-ztunnel') };
  }
  return { missing: 'no --istio-ztunnel PATH, no ISTIO_ZTUNNEL and no istio-ztunnel on PATH' };
}
