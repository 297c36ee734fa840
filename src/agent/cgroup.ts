/**
 * The pod UID in a process's `/proc/PID/cgroup`, as kubelets name pod cgroups: cgroupfs
 * (`/kubepods/burstable/pod<uid>/<container>`, also the lab's), systemd
 * (`…-pod<uid with _>.slice/cri-containerd-<id>.scope`), and a bare pod cgroup with no container
 * level (`…/kubepods/pod<uid>`), which Istio's pattern rejects and this one accepts: the UID alone is
 * what the agent needs.
 */
import { agentError } from './errors.js';

// [[:punct:]] of Go's regexp: ASCII punctuation.
const P = '[!-\\/:-@\\[-`{-~]';
const N = '[^!-\\/:-@\\[-`{-~]';
const UID_PATTERN = new RegExp(
  `${P}pod([0-9a-f]{8})${P}?([0-9a-f]{4})${P}?([0-9a-f]{4})${P}?([0-9a-f]{4})${P}?([0-9a-f]{12})(?:${P}(?:${N}+${P})*(${N}+))?$`,
  'i',
);

export interface CgroupPod {
  uid: string;
  /** The container level's id, when the process sits in a container cgroup. */
  containerId: string | undefined;
}

/** One cgroup path (`.scope` suffix ignored); undefined when it names no pod. */
export function podFromCgroupPath(path: string): CgroupPod | undefined {
  const m = UID_PATTERN.exec(path.replace(/\.scope$/, ''));
  if (!m) return undefined;
  return { uid: m.slice(1, 6).join('-').toLowerCase(), containerId: m[6] };
}

/**
 * The whole file (`hier:controllers:path` lines). Lines naming no pod are ignored; lines that
 * disagree on the UID or the container are an error, since the process cannot be attributed.
 */
export function podFromCgroupFile(text: string): CgroupPod | undefined {
  let found: CgroupPod | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const first = line.indexOf(':');
    const second = first < 0 ? -1 : line.indexOf(':', first + 1);
    if (second < 0)
      throw agentError('AGENT_CGROUP_INVALID', `cgroup line '${line}' is not hier:controllers:path`);
    const pod = podFromCgroupPath(line.slice(second + 1));
    if (!pod) continue;
    if (found && found.uid !== pod.uid) {
      throw agentError('AGENT_CGROUP_AMBIGUOUS', `cgroup lines name two pods: ${found.uid} and ${pod.uid}`);
    }
    if (found && found.containerId !== pod.containerId) {
      throw agentError(
        'AGENT_CGROUP_AMBIGUOUS',
        `cgroup lines name two containers of pod ${pod.uid}: ${found.containerId ?? '(none)'} and ${pod.containerId ?? '(none)'}`,
      );
    }
    found = pod;
  }
  return found;
}
