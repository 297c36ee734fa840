/** The mesh path for the benchmark: a ztunnel per lab node, the pods enrolled with HBONE between them. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLab } from '../src/lab/index.js';
import type { LabPod } from '../src/lab/state.js';
import { LabMesh } from '../test/helpers/lab-mesh.js';

export async function startMesh(lab: string, pods: LabPod[]): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-bench-'));
  // Warnings only: per-connection access logs would cost the proxies more than the traffic does.
  const mesh = await LabMesh.start(loadLab(lab), {
    dir,
    protocol: 'HBONE',
    ztunnelArgs: ['--log-level', 'warn,ztunnel::state=info'],
  });
  try {
    for (const pod of pods) await mesh.enroll(pod);
  } catch (err) {
    await mesh.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return async () => {
    await mesh.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
