/**
 * A pod sandbox made as a container runtime makes one: a netns, the node's CNI chain (the lab's
 * primary plugin + host-local, loopback, then ambit-cni) run through the CNI runtime with the pod's
 * CNI_ARGS, then the pod's processes (a pause process, and the app for the lab's app images) inside
 * that netns and the pod's cgroup. The record on disk lets a restarted kubelet adopt or tear down what it made.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../../errors.js';
import { connected, connectInNetns, NetnsHandle } from '../../sys/index.js';
import { type CniResult, CniRuntime, type CniSandbox, type NetworkConfigList } from '../cni-runtime/index.js';
import { nodeConflist } from '../conflist.js';
import { labError } from '../errors.js';
import { podAddresses } from '../lab.js';
import { netnsPath, POD_IFNAME, podNetns } from '../names.js';
import type { LabNode, LabState } from '../state.js';
import { listNetns, sh } from '../system.js';
import { containerCgroup, podCgroup, removeCgroupTree } from './cgroup.js';
import { ClusterLayout } from './layout.js';
import { terminate } from './supervisor.js';

const ENTRY = fileURLToPath(new URL('./entry.js', import.meta.url));
/** Images the lab kubelet knows how to "run"; anything else gets only the pause process. */
export const APP_PORTS: Readonly<Record<string, number>> = { httpbin: 8000 };

export interface SandboxSpec {
  namespace: string;
  name: string;
  uid: string;
  /** The lab app to start in the pod (`httpbin`), if any. */
  app: string | undefined;
}

export interface SandboxRecord extends SandboxSpec {
  /** The sandbox's id (CNI_CONTAINERID), also the pause container's, as containerd has it. */
  containerId: string;
  /** The app container's id, when the pod runs a lab app. */
  appContainerId?: string;
  netns: string;
  netnsPath: string;
  /** The pod's address in the lab's primary family. */
  ip: string;
  /** Every address, primary first (dual stack: IPv4 then IPv6), as the kubelet reports podIPs. */
  ips?: string[];
  cniResult: CniResult;
  /** The pod's cgroup; each container has its own below it, named by its id. */
  cgroup: string;
  pids: number[];
}

export class SandboxManager {
  readonly layout: ClusterLayout;
  readonly runtime: CniRuntime;
  readonly conflist: NetworkConfigList;

  constructor(
    readonly state: LabState,
    readonly node: LabNode,
  ) {
    this.layout = new ClusterLayout(state.name);
    this.runtime = new CniRuntime({
      pluginDirs: [this.layout.cniBinDir, ...state.pluginDirs],
      inNetns: node.netnsPath,
    });
    const primary = nodeConflist(state, node);
    this.conflist = {
      ...primary,
      plugins: [
        ...primary.plugins,
        { type: 'ambit-cni', cni_agent_run_dir: this.layout.agentRunDir(node.name) },
      ],
    };
  }

  #recordFile(uid: string): string {
    return join(this.layout.sandboxDir(this.node.name), `${uid}.json`);
  }

  records(): SandboxRecord[] {
    let files: string[];
    try {
      files = readdirSync(this.layout.sandboxDir(this.node.name));
    } catch {
      return [];
    }
    return files
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(this.layout.sandboxDir(this.node.name), f), 'utf8')));
  }

  record(uid: string): SandboxRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.#recordFile(uid), 'utf8')) as SandboxRecord;
    } catch {
      return undefined;
    }
  }

  #cniSandbox(spec: SandboxSpec, containerId: string, path: string): CniSandbox {
    return {
      containerId,
      netns: path,
      ifname: POD_IFNAME,
      podNamespace: spec.namespace,
      podName: spec.name,
      podUid: spec.uid,
    };
  }

  /** Creates the sandbox; on failure undoes it (CNI DEL, netns removed) and rethrows the ADD error. */
  async create(spec: SandboxSpec): Promise<SandboxRecord> {
    const netns = podNetns(this.state.name, spec);
    const path = netnsPath(netns);
    const containerId = randomBytes(32).toString('hex');
    const cni = this.#cniSandbox(spec, containerId, path);
    if (listNetns().includes(netns)) sh('ip', ['netns', 'del', netns]);
    sh('ip', ['netns', 'add', netns]);
    let result: CniResult;
    try {
      result = await this.runtime.add(this.conflist, cni);
    } catch (err) {
      await this.runtime.del(this.conflist, cni).catch(() => {});
      sh('ip', ['netns', 'del', netns]);
      throw err;
    }
    const cgroup = podCgroup(this.state.name, spec.uid);
    mkdirSync(cgroup, { recursive: true });
    const ips = podAddresses(result, POD_IFNAME);
    const record: SandboxRecord = {
      ...spec,
      containerId,
      netns,
      netnsPath: path,
      ip: ips[0]!,
      ips,
      cniResult: result,
      cgroup,
      pids: [],
    };
    record.pids.push(this.#spawnInPod(record, containerId, ['sleep', 'infinity'], '/dev/null'));
    if (spec.app && APP_PORTS[spec.app]) {
      const log = join(this.layout.nodeDir(this.node.name), 'pods', `${spec.namespace}_${spec.name}.log`);
      record.appContainerId = randomBytes(32).toString('hex');
      record.pids.push(
        this.#spawnInPod(record, record.appContainerId, [process.execPath, ENTRY, spec.app], log),
      );
    }
    mkdirSync(this.layout.sandboxDir(this.node.name), { recursive: true });
    writeFileSync(this.#recordFile(spec.uid), `${JSON.stringify(record, null, 2)}\n`);
    if (spec.app && APP_PORTS[spec.app]) await waitListening(record, APP_PORTS[spec.app]!);
    return record;
  }

  /** A detached process that joins its container's cgroup in the pod first, then enters the pod netns. */
  #spawnInPod(record: SandboxRecord, containerId: string, argv: string[], logFile: string): number {
    mkdirSync(join(logFile, '..'), { recursive: true });
    const cgroup = containerCgroup(record.cgroup, containerId);
    mkdirSync(cgroup, { recursive: true });
    const out = openSync(logFile, 'a');
    try {
      const script =
        'echo $$ > "$1/cgroup.procs" && net="$2" && shift 2 && exec nsenter --net="$net" -- "$@"';
      const child = spawn('sh', ['-c', script, 'pod', cgroup, record.netnsPath, ...argv], {
        detached: true,
        stdio: ['ignore', out, out],
      });
      child.on('error', () => {});
      child.unref();
      if (child.pid === undefined)
        throw labError(
          'LAB_POD_PROCESS',
          `cannot start ${argv[0]} in pod ${record.namespace}/${record.name}`,
        );
      return child.pid;
    } finally {
      closeSync(out);
    }
  }

  /**
   * Stops the pod's processes (SIGTERM, SIGKILL after `graceMs`), runs CNI DEL, removes the netns
   * and the cgroup; idempotent.
   */
  async destroy(record: SandboxRecord, graceMs = 2000): Promise<string[]> {
    const warnings: string[] = [];
    // The app first, as a runtime stops containers before the sandbox; then the pause process.
    const [pause, ...apps] = record.pids;
    await Promise.all(apps.map((pid) => terminate(pid, graceMs)));
    if (pause !== undefined) await terminate(pause, graceMs);
    try {
      await this.runtime.del(
        this.conflist,
        this.#cniSandbox(record, record.containerId, record.netnsPath),
        record.cniResult,
      );
    } catch (err) {
      warnings.push(`CNI DEL: ${errorMessage(err)}`);
    }
    if (listNetns().includes(record.netns)) sh('ip', ['netns', 'del', record.netns]);
    removeCgroupTree(record.cgroup);
    rmSync(this.#recordFile(record.uid), { force: true });
    return warnings;
  }
}

/** Every address of the sandbox, primary first; a record written before there were several has only `ip`. */
export function sandboxIps(record: SandboxRecord): string[] {
  return record.ips && record.ips.length > 0 ? record.ips : [record.ip];
}

/** The kubelet's readiness probe for lab apps: a TCP connect to the app's port inside the pod. */
async function waitListening(record: SandboxRecord, port: number): Promise<void> {
  const netns = NetnsHandle.open(record.netnsPath);
  try {
    for (let attempt = 0; attempt < 200; attempt++) {
      try {
        const s = await connected(connectInNetns(netns, { host: '127.0.0.1', port }));
        s.destroy();
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } finally {
    netns.close();
  }
  throw labError(
    'LAB_POD_NOT_READY',
    `${record.app} in pod ${record.namespace}/${record.name} did not listen on ${port}`,
  );
}
