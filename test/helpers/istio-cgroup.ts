/**
 * Istio's istio-cni pattern for a pod process's cgroup path (cni/pkg/nodeagent/podcgroupns_linux.go,
 * as described in the project's istio-cni reference, section 3.5): punctuation, `pod`, the UID in
 * hex groups 8-4-4-4-12 with optional single punctuation between them, punctuation, any number of
 * non-punctuation segments each followed by punctuation, then the container id at the end, which is
 * required. Written from that description, to check that a path the lab makes is one Istio accepts.
 */
const P = '[!-\\/:-@\\[-`{-~]';
const N = '[^!-\\/:-@\\[-`{-~]';
const ISTIO_POD_CGROUP = new RegExp(
  `${P}pod([0-9a-f]{8}${P}?[0-9a-f]{4}${P}?[0-9a-f]{4}${P}?[0-9a-f]{4}${P}?[0-9a-f]{12})${P}(?:${N}+${P})*(${N}+)$`,
  'i',
);

/** The pod UID and container id Istio reads from one cgroup path (`.scope` ignored), if any. */
export function istioPodOf(path: string): { uid: string; containerId: string } | undefined {
  const m = ISTIO_POD_CGROUP.exec(path.replace(/\.scope$/, ''));
  return m ? { uid: m[1]!.replace(new RegExp(P, 'g'), '-').toLowerCase(), containerId: m[2]! } : undefined;
}
