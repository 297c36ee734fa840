/**
 * Runs the node floor (node-floor.ts) on the benchmark's lab: one relay process per node, its fronts on
 * the client's node, and the targets that reach the same-node and cross-node servers through it.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWorkloadCsr } from '../src/identity/csr.js';
import { LocalCa } from '../src/identity/local-ca.js';
import { formatSpiffeId } from '../src/identity/spiffe.js';
import { ClusterLayout, TRUST_DOMAIN } from '../src/lab/cluster/index.js';
import type { LabNode } from '../src/lab/index.js';
import type { NetnsHandle } from '../src/sys/index.js';
import type { Target } from './load.js';
import type { FloorConfig } from './node-floor.js';
import { startInNetns, stopProcess } from './proc.js';
import type { Placement } from './report.js';

const here = dirname(fileURLToPath(import.meta.url));
const BACK_TLS_PORT = 19110;
const BACK_PLAIN_PORT = 19111;
const CERT_TTL_SECONDS = 24 * 3600;

export interface NodeFloor {
  /** The relay process of each node, by node name. */
  pids: Map<string, number>;
  /** Over TLS between the nodes: bulk and request/response. */
  bytes: Record<Placement, Target>;
  /** Plain TCP between the nodes: new connections (a mesh's tunnels are pooled, no handshake per connection). */
  conns: Record<Placement, Target>;
  /** Ends the relays and waits until they are gone (their ports are free again). */
  stop(): Promise<void>;
}

/**
 * A certificate for the relays from the lab's CA, as a workload's: a leaf signed by the root, which is
 * what the fronts trust (a CA certificate itself cannot sign a TLS 1.3 handshake). Files in the lab's
 * directory, gone with the lab.
 */
async function relayCertificate(lab: string): Promise<Pick<FloorConfig, 'certFile' | 'keyFile' | 'caFile'>> {
  const layout = new ClusterLayout(lab);
  const ca = await LocalCa.open(layout.caDir, { trustDomain: TRUST_DOMAIN });
  const identity = formatSpiffeId({
    trustDomain: ca.trustDomain,
    namespace: 'bench',
    serviceAccount: 'node-floor',
  });
  const csr = await createWorkloadCsr(identity);
  const signed = await ca.sign(csr.csrPem, { identity, ttlSeconds: CERT_TTL_SECONDS });
  const dir = join(layout.dir, 'node-floor');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = {
    certFile: join(dir, 'cert.pem'),
    keyFile: join(dir, 'key.pem'),
    caFile: join(dir, 'root.pem'),
  };
  await writeFile(files.certFile, signed.certChainPem.join(''), { mode: 0o600 });
  await writeFile(files.keyFile, csr.privateKeyPem, { mode: 0o600 });
  await writeFile(files.caFile, signed.rootPem, { mode: 0o600 });
  return files;
}

/**
 * Starts a relay on every node. The client's node gets four fronts (same/cross node × TLS/plain); the
 * servers are the same pods the ztunnels are measured against.
 */
export async function startNodeFloor(
  lab: string,
  nodes: readonly LabNode[],
  client: { node: string; netns: NetnsHandle },
  servers: Record<Placement, { node: string; ip: string; port: number }>,
): Promise<NodeFloor> {
  const base = {
    backTlsPort: BACK_TLS_PORT,
    backPlainPort: BACK_PLAIN_PORT,
    ...(await relayCertificate(lab)),
  };
  const nodeIp = (name: string) => {
    const node = nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no lab node ${name}`);
    return node.ip;
  };
  const clientIp = nodeIp(client.node);
  const bytes = {} as Record<Placement, Target>;
  const conns = {} as Record<Placement, Target>;
  const fronts: FloorConfig['fronts'] = [];
  let port = 19101;
  for (const [placement, server] of Object.entries(servers) as [Placement, (typeof servers)[Placement]][]) {
    for (const tls of [true, false]) {
      const via = { host: nodeIp(server.node), port: tls ? BACK_TLS_PORT : BACK_PLAIN_PORT, tls };
      fronts.push({ port, via, target: { host: server.ip, port: server.port } });
      (tls ? bytes : conns)[placement] = { netns: client.netns, host: clientIp, port };
      port++;
    }
  }
  const children: ChildProcess[] = [];
  const stop = () => Promise.all(children.map(stopProcess)).then(() => {});
  try {
    for (const node of nodes) {
      const config: FloorConfig = { ...base, fronts: node.name === client.node ? fronts : [] };
      const script = join(here, 'node-floor.js');
      children.push(
        await startInNetns(node.netns, script, [JSON.stringify(config)], `node floor relay on ${node.name}`),
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const pids = new Map(nodes.map((n, i) => [n.name, children[i]!.pid!] as const));
  return { pids, bytes, conns, stop };
}
