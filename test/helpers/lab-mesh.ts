/**
 * A mesh over a lab without the node agent: one `ambit ztunnel` process per node (inside the node's
 * netns), a ZDS server per node played by this process, a shared local CA for HBONE certificates and
 * a local workload file describing the enrolled pods. Enrolling a pod = the seed's rules in its netns
 * + a ZDS Add, which is what the node agent does. Used by the benchmark and the HBONE lab tests only,
 * so it lives beside the tests rather than in the product.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { AmbitError } from '../../src/errors.js';
import { LocalCa } from '../../src/identity/local-ca.js';
import { httpStatusIn } from '../../src/lab/http-in-netns.js';
import type { LabNode, LabPod, LabState } from '../../src/lab/state.js';
import { createRedirector } from '../../src/redirect/index.js';
import { NetnsHandle } from '../../src/sys/index.js';
import { workloadUid, ZdsServer } from '../../src/zds/index.js';

const CLI_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ENTRY = `const { main } = await import(${JSON.stringify(`file://${CLI_MAIN}`)}); process.exitCode = await main(process.argv.slice(1));`;
const READY_TIMEOUT_MS = 20_000;

export interface LabMeshOptions {
  /** Where sockets, the CA and the workload file live (the caller removes it). */
  dir: string;
  /** HBONE between enrolled pods (default), or plain TCP. */
  protocol?: 'HBONE' | 'TCP';
  trustDomain?: string;
  /** Extra `ambit ztunnel` flags, e.g. a log level. */
  ztunnelArgs?: string[];
  /** Extra environment of the ztunnel processes (ztunnel's variables, e.g. a timeout). */
  ztunnelEnv?: Record<string, string>;
}

export class LabMeshNode {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(
    readonly node: LabNode,
    readonly agent: ZdsServer,
    readonly child: ChildProcess,
  ) {
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      this.lines.push(...parts);
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.lines.push(...chunk.split('\n')));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  matching(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l));
  }
}

export class LabMesh {
  readonly nodes = new Map<string, LabMeshNode>();
  readonly #workloads: object[] = [];
  // The rules the agent writes by default (AMBIENT_DNS_CAPTURE on), for the ztunnel's DNS proxy too.
  readonly #redirector = createRedirector({ backend: 'iptables', inbound: 'tproxy', dnsCapture: true });

  private constructor(
    readonly lab: LabState,
    readonly options: Required<Omit<LabMeshOptions, 'ztunnelArgs' | 'ztunnelEnv'>> & {
      ztunnelArgs: string[];
      ztunnelEnv: Record<string, string>;
    },
  ) {}

  get workloadFile(): string {
    return join(this.options.dir, 'workloads.yaml');
  }

  get caDir(): string {
    return join(this.options.dir, 'ca');
  }

  /** Starts a ztunnel per lab node and waits until each is ready. */
  static async start(lab: LabState, options: LabMeshOptions): Promise<LabMesh> {
    const mesh = new LabMesh(lab, {
      dir: options.dir,
      protocol: options.protocol ?? 'HBONE',
      trustDomain: options.trustDomain ?? 'cluster.local',
      ztunnelArgs: options.ztunnelArgs ?? [],
      ztunnelEnv: options.ztunnelEnv ?? {},
    });
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    // Created once here, so the node proxies never race to create the root.
    await LocalCa.open(mesh.caDir, { trustDomain: mesh.options.trustDomain });
    mesh.#writeWorkloads();
    try {
      for (const node of lab.nodes) await mesh.#startNode(node);
    } catch (err) {
      await mesh.stop();
      throw err;
    }
    return mesh;
  }

  async #startNode(node: LabNode): Promise<void> {
    const agent = ZdsServer.listen({
      path: join(this.options.dir, `${node.name}.sock`),
      pods: { snapshot: () => [] },
    });
    const args = [
      ...['--input-type=module', '-e', ENTRY, 'ztunnel'],
      ...['--inpod-uds', agent.path, '--node-name', node.name],
      ...['--local-xds-path', this.workloadFile, '--local-ca-dir', this.caDir],
      ...['--trust-domain', this.options.trustDomain],
      ...this.options.ztunnelArgs,
    ];
    const child = spawn('ip', ['netns', 'exec', node.netns, process.execPath, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.options.ztunnelEnv },
    });
    const meshNode = new LabMeshNode(node, agent, child);
    this.nodes.set(node.name, meshNode);
    const netns = NetnsHandle.open(node.netnsPath);
    try {
      const deadline = Date.now() + READY_TIMEOUT_MS;
      while ((await httpStatusIn(netns, 15021, '/healthz/ready')) !== 200) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new AmbitError(
            'ERR_LAB_MESH',
            `ztunnel on ${node.name} did not become ready:\n${meshNode.lines.slice(-20).join('\n')}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      netns.close();
    }
  }

  #writeWorkloads(): void {
    writeFileSync(this.workloadFile, stringify({ workloads: this.#workloads }));
  }

  /** Puts `pod` in the mesh: workload entry, the seed's rules in its netns, ZDS Add to its node's proxy. */
  async enroll(pod: LabPod, serviceAccount = 'default'): Promise<void> {
    const node = this.nodes.get(pod.node);
    if (!node) throw new AmbitError('ERR_LAB_MESH', `no ztunnel on node ${pod.node}`);
    this.#workloads.push({
      uid: `Kubernetes//v1/Pod/${pod.namespace}/${pod.name}`,
      name: pod.name,
      namespace: pod.namespace,
      serviceAccount,
      trustDomain: this.options.trustDomain,
      workloadIps: [pod.ip],
      protocol: this.options.protocol,
      node: pod.node,
    });
    this.#writeWorkloads();
    // Every proxy must know the new workload before traffic to it is routed by protocol.
    await this.#waitForWorkloadReload();
    await this.#redirector.apply(pod.netnsPath, [pod.ip]);
    await node.agent.addWorkload(
      workloadUid(pod.uid),
      { name: pod.name, namespace: pod.namespace, serviceAccount },
      pod.netnsPath,
    );
  }

  async #waitForWorkloadReload(): Promise<void> {
    const expected = this.#workloads.length;
    const re = new RegExp(`loaded local workload config .*workloads=${expected}\\b`);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (![...this.nodes.values()].every((n) => n.matching(re).length > 0)) {
      if (Date.now() > deadline)
        throw new AmbitError('ERR_LAB_MESH', 'ztunnels did not reload the workload file');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    for (const n of this.nodes.values()) {
      n.child.kill('SIGTERM');
      const timer = setTimeout(() => n.child.kill('SIGKILL'), 10_000);
      await n.exited;
      clearTimeout(timer);
      n.agent.close();
    }
    this.nodes.clear();
  }
}
