/**
 * ztunnel refuses a netns that is not a pod's: its own, the host's root (init) netns, and a netns
 * another uid is already proxying. This test is the node agent (a ZdsServer); the node proxy is the
 * real `ambit ztunnel` process inside a netns of its own, as on a lab node. Each refusal is a NACK
 * naming the reason, and ss shows that no ztunnel listener opened there.
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { INIT_NETNS_INODE } from '../../../src/sys/index.js';
import { workloadUid, ZdsServer } from '../../../src/zds/index.js';
import { run, TestNetns } from '../../helpers/netns.js';
import { ZtunnelCli } from '../../ztunnel/fixtures/ztunnel-cli.js';

const POD_PORTS = [15001, 15006, 15008];
/**
 * The host's root netns: pid 1's when this process may open it; otherwise (a sandbox that hides
 * pid 1) this process's own, which must then be the kernel's initial netns.
 */
function rootNetnsPath(): string {
  try {
    closeSync(openSync('/proc/1/ns/net', 'r'));
    return '/proc/1/ns/net';
  } catch {
    const own = `/proc/${process.pid}/ns/net`;
    assert.equal(statSync(own, { bigint: true }).ino, INIT_NETNS_INODE, 'the test runs in the root netns');
    return own;
  }
}

const info = (name: string) => ({ name, namespace: 'default', serviceAccount: 'default' });

/** `ss -Htlnp` in `netns` (null: this process's, the root netns): listeners on the pod ports owned by `pid`. */
function ztunnelPodListeners(netns: TestNetns | null, pid: number): string[] {
  const argv = ['ss', '-Htlnp'];
  const out = netns ? run('ip', ['netns', 'exec', netns.name, ...argv]) : run(argv[0]!, argv.slice(1));
  return out
    .split('\n')
    .filter((l) => POD_PORTS.some((p) => new RegExp(`:${p}\\s`).test(l)) && l.includes(`pid=${pid},`));
}

describe('ztunnel refuses a netns that is not a pod of its own', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-zds-refuse-'));
  const uds = join(dir, 'ztunnel.sock');
  const nets: TestNetns[] = [];
  let server: ZdsServer;
  let ztunnel: ZtunnelCli;
  let zns: TestNetns;

  before(async () => {
    writeFileSync(join(dir, 'xds.yaml'), 'workloads: []\n');
    server = ZdsServer.listen({ path: uds, pods: { snapshot: () => [] } });
    zns = new TestNetns();
    nets.push(zns);
    ztunnel = new ZtunnelCli(['--inpod-uds', uds, '--local-xds-path', join(dir, 'xds.yaml')], {
      netns: zns.name,
    });
    await ztunnel.waitFor(/pod received snapshot sent/, 1, 30_000);
  });

  after(async () => {
    await ztunnel?.stop();
    server?.close();
    for (const n of nets) n.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it("an Add with ztunnel's own netns is NACKed and no pod listener opens there", async () => {
    await assert.rejects(
      server.addWorkload(workloadUid('uid-own'), info('own'), zns.path),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ZDS_NACK');
        assert.match(err.message, /refus.*ztunnel's own network namespace/);
        return true;
      },
    );
    assert.deepEqual(ztunnelPodListeners(zns, ztunnel.pid), []);
  });

  it("an Add with the host's root netns (/proc/1/ns/net) is NACKed and no pod listener opens there", async () => {
    await assert.rejects(
      server.addWorkload(workloadUid('uid-root'), info('root'), rootNetnsPath()),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ZDS_NACK');
        assert.match(err.message, /refus.*host's root network namespace/);
        return true;
      },
    );
    assert.deepEqual(ztunnelPodListeners(null, ztunnel.pid), []);
  });

  it('a second uid for a netns that already has a proxy is NACKed; one listener set stays', async () => {
    const pod = new TestNetns();
    nets.push(pod);
    await server.addWorkload(workloadUid('uid-a'), info('a'), pod.path);
    assert.equal(ztunnelPodListeners(pod, ztunnel.pid).length, 3);
    await assert.rejects(
      server.addWorkload(workloadUid('uid-b'), info('b'), pod.path),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ZDS_NACK');
        assert.match(err.message, /refus.*already proxied for pod WorkloadUid\("uid-a"\)/);
        return true;
      },
    );
    assert.equal(ztunnelPodListeners(pod, ztunnel.pid).length, 3, 'still one listener per port');
    // The refused uid is not pending: ztunnel stays ready, and the first pod's proxy is untouched.
    await server.addWorkload(workloadUid('uid-a'), info('a'), pod.path);
    assert.equal(ztunnelPodListeners(pod, ztunnel.pid).length, 3);
  });
});
