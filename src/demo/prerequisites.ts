/**
 * What `ambit demo` needs before it touches anything: the lab's own prerequisites (root, iproute2,
 * the reference CNI plugins), ambit's CNI plugin bundle, and the tools the walkthrough runs inside
 * the pods. Each missing piece is an error naming the fix.
 */
import { errorCode, errorMessage } from '../errors.js';
import { findCniBundle } from '../lab/cluster/index.js';
import { DEFAULT_CNI_PATH } from '../lab/cni-runtime/index.js';
import { type LabErrorCode, labError } from '../lab/errors.js';
import { checkPrerequisites } from '../lab/index.js';
import { toolExists } from '../lab/system.js';
import { demoError } from './errors.js';

/** The tools the walkthrough runs inside the sleep pod, and the Debian package of each. */
const WALKTHROUGH_TOOLS: Record<string, string> = {
  curl: 'curl',
  tcpdump: 'tcpdump',
  ss: 'iproute2',
  'iptables-save': 'iptables',
};

export function checkDemoPrerequisites(): void {
  checkPrerequisites([DEFAULT_CNI_PATH]);
  const missing = Object.keys(WALKTHROUGH_TOOLS).filter((t) => !toolExists(t));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((t) => WALKTHROUGH_TOOLS[t]!))].join(' ');
    throw demoError(
      'DEMO_MISSING_TOOL',
      `the walkthrough runs ${missing.join(', ')} inside the pods but they are not installed: run scripts/setup (or apt-get install ${packages})`,
    );
  }
  try {
    findCniBundle();
  } catch (err) {
    if (errorCode(err) !== ('LAB_NO_CNI_PLUGIN' satisfies LabErrorCode)) throw err;
    throw labError('LAB_NO_CNI_PLUGIN', `ambit is not fully built: run scripts/setup (${errorMessage(err)})`);
  }
}
