/**
 * The real single-node Kubernetes cluster of `scripts/k8s` (this checkout's), as the Kubernetes demo
 * drives it: kubectl and helm against it, the chart values it needs, and a pod's host pid and
 * network namespace (from containerd), for the checks the seed runs inside a pod.
 */
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { demoError } from './errors.js';

const execFileAsync = promisify(execFile);

/** The checkout this build belongs to (dist/src/demo/ -> ../../..): scripts/, deploy/, dist/images. */
export const CHECKOUT = fileURLToPath(new URL('../../../', import.meta.url));
export const CHART = join(CHECKOUT, 'deploy', 'charts', 'ambit');
export const SYSTEM_NAMESPACE = 'istio-system';
/** Inside the cluster's service CIDR (10.96.0.0/12): istiod's fixed ClusterIP, as the cluster has no DNS. */
export const ISTIOD_CLUSTER_IP = '10.96.0.15';

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are read field by field.
export type KubeObject = any;

export function script(name: string): string {
  return join(CHECKOUT, 'scripts', name);
}

function run(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      input: input ?? '',
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    const e = err as { stderr?: string; status?: number };
    throw demoError(
      'DEMO_COMMAND_FAILED',
      `${[cmd, ...args].join(' ')} exited ${e.status ?? '?'}: ${(e.stderr ?? '').trim().slice(-2000)}`,
    );
  }
}

export class K8sCluster {
  /** `scripts/k8s env`: kubeconfig, netns, CNI dirs, containerd socket... */
  readonly env: Record<string, string> = {};

  static up(images: readonly string[]): K8sCluster {
    run(script('k8s'), ['up', ...images.flatMap((f) => ['--image', f])]);
    return new K8sCluster();
  }

  constructor() {
    for (const line of run(script('k8s'), ['env']).split('\n')) {
      const m = /^(\w+)=(.*)$/.exec(line);
      if (m) this.env[m[1]!] = m[2]!;
    }
  }

  static down(): void {
    run(script('k8s'), ['down']);
  }

  kubectl(...args: string[]): string {
    return run(script('k8s'), ['kubectl', ...args]);
  }

  kubectlIn(input: string, ...args: string[]): string {
    return run(script('k8s'), ['kubectl', ...args], input);
  }

  async kubectlAsync(...args: string[]): Promise<string> {
    return (
      await execFileAsync(script('k8s'), ['kubectl', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
    ).stdout;
  }

  json(...args: string[]): KubeObject {
    return JSON.parse(this.kubectl(...args, '-o', 'json'));
  }

  /** Helm inside the node's netns (where the API server's address is reachable). */
  helm(...args: string[]): string {
    const bin = run(script('helm'), ['--ambit-bin']).trim();
    return run('nsenter', [
      `--net=${this.env['AMBIT_K8S_NETNS_PATH']}`,
      '--',
      bin,
      '--kubeconfig',
      this.env['AMBIT_K8S_KUBECONFIG']!,
      ...args,
    ]);
  }

  /** The chart values this cluster needs: imported images, its CNI dirs, istiod's fixed ClusterIP. */
  chartValues(): string[] {
    return [
      ...['--set', 'global.imagePullPolicy=Never'],
      ...['--set', `cni.cniConfDir=${this.env['AMBIT_K8S_CNI_CONF_DIR']}`],
      ...['--set', `cni.cniBinDir=${this.env['AMBIT_K8S_CNI_BIN_DIR']}`],
      // the plugin's socket and kubeconfig inside the cluster's run dir, which `scripts/k8s down` removes
      ...['--set', `cni.cniAgentRunDir=${this.env['AMBIT_K8S_RUN']}/ambit-cni`],
      ...['--set', `pilot.serviceClusterIP=${ISTIOD_CLUSTER_IP}`],
      // /var/run/netns resolves to /run/netns, the shared mount `ip netns` made; / is private here.
      ...['--set', 'cni.cniNetnsDir=/run/netns'],
    ];
  }

  pods(namespace: string, selector: string): KubeObject[] {
    return this.json('-n', namespace, 'get', 'pods', '-l', selector).items;
  }

  /** The host pid of a pod's first container (containerd's task). */
  containerPid(pod: KubeObject): number {
    const id = String(pod.status.containerStatuses[0].containerID).replace(/^containerd:\/\//, '');
    const tasks = run('ctr', [
      '--address',
      this.env['AMBIT_K8S_CONTAINERD_SOCK']!,
      '-n',
      'k8s.io',
      'tasks',
      'ls',
    ]);
    const line = tasks.split('\n').find((l) => l.startsWith(`${id} `));
    if (!line)
      throw demoError('DEMO_CHECK_FAILED', `containerd has no task for ${pod.metadata.name} (${id})`);
    return Number(line.trim().split(/\s+/)[1]);
  }

  /** The pod's network namespace as `ip netns` names it (the runtime's cni-… bind mount). */
  podNetns(pod: KubeObject): string {
    return run('ip', ['netns', 'identify', String(this.containerPid(pod))]).trim();
  }
}

export function isReady(p: KubeObject): boolean {
  return p?.status?.conditions?.some((c: KubeObject) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** Polls `check` until it holds; the error names what was awaited. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = check();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() > deadline) {
      throw demoError('DEMO_CHECK_FAILED', `timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
