/**
 * The lab cluster's pieces that need no kernel set-up: the process supervisor (detached start, pid
 * files that survive pid reuse, SIGTERM then SIGKILL), the pod cgroup path the agent must recognise,
 * and the kubelet's image and pending-reason rules.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Pod } from '@kubernetes/client-node';
import { podFromCgroupPath } from '../../src/agent/cgroup.js';
import { containerCgroup, podCgroup } from '../../src/lab/cluster/cgroup.js';
import { killLabProcesses, labProcesses } from '../../src/lab/cluster/cleanup.js';
import { pendingReason } from '../../src/lab/cluster/cluster.js';
import { appOf } from '../../src/lab/cluster/kubelet.js';
import { ClusterLayout, parseComponent, processName } from '../../src/lab/cluster/layout.js';
import {
  logTail,
  processAlive,
  runningPid,
  startDetached,
  stopByPidFile,
} from '../../src/lab/cluster/supervisor.js';
import { istioPodOf } from '../helpers/istio-cgroup.js';

const dir = mkdtempSync(join(tmpdir(), 'ambit-labint-'));
const started: number[] = [];
after(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('supervisor', () => {
  test('a detached process writes to its log and is found, then stopped, by its pid file', async () => {
    const files = { pidFile: join(dir, 'a.pid'), logFile: join(dir, 'logs', 'a.log') };
    const pid = startDetached(files, ['sh', '-c', 'echo started; exec sleep 60'], process.env);
    started.push(pid);
    assert.equal(runningPid(files.pidFile), pid);
    for (let i = 0; i < 100 && !logTail(files.logFile).includes('started'); i++) await sleep(20);
    assert.equal(logTail(files.logFile), 'started');
    assert.equal(await stopByPidFile(files.pidFile), true);
    assert.equal(processAlive(pid), false);
    assert.equal(runningPid(files.pidFile), undefined);
    assert.equal(await stopByPidFile(files.pidFile), false, 'stopping again is a no-op');
  });

  test('a process that ignores SIGTERM is killed after the grace period', async () => {
    const files = { pidFile: join(dir, 'b.pid'), logFile: join(dir, 'b.log') };
    const pid = startDetached(
      files,
      ['sh', '-c', 'trap "" TERM; echo armed; while :; do sleep 1; done'],
      process.env,
    );
    started.push(pid);
    for (let i = 0; i < 100 && !logTail(files.logFile).includes('armed'); i++) await sleep(20);
    assert.equal(await stopByPidFile(files.pidFile, 200), true);
    assert.equal(processAlive(pid), false);
  });

  test('a pid file whose start time does not match (a recycled pid) names no running process', () => {
    const file = join(dir, 'stale.pid');
    writeFileSync(file, `${process.pid} 1\n`);
    assert.equal(runningPid(file), undefined);
    writeFileSync(file, 'garbage\n');
    assert.equal(runningPid(file), undefined);
    assert.equal(runningPid(join(dir, 'missing.pid')), undefined);
    const self = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    const start = self
      .slice(self.lastIndexOf(')') + 1)
      .trim()
      .split(/\s+/)[19];
    writeFileSync(file, `${process.pid} ${start}\n`);
    assert.equal(runningPid(file), process.pid);
  });
});

describe('crash leftovers', () => {
  test('a component whose pid file is gone is still found and stopped by its command line', async () => {
    const lab = `tz${process.pid}`;
    // Stands in for an orphaned `ambit ztunnel` of the lab: its arguments name the lab's state dir.
    const files = { pidFile: join(dir, 'orphan.pid'), logFile: join(dir, 'orphan.log') };
    const pid = startDetached(
      files,
      [
        process.execPath,
        '-e',
        'setTimeout(() => {}, 60_000)',
        'ztunnel',
        `/var/run/ambit/lab/${lab}/nodes/n1/ztunnel.sock`,
      ],
      process.env,
    );
    started.push(pid);
    rmSync(files.pidFile);
    assert.ok(labProcesses(lab).includes(pid));
    assert.deepEqual(labProcesses(`${lab}x`).includes(pid), false, 'another lab does not claim it');
    await killLabProcesses(lab);
    assert.equal(processAlive(pid), false);
  });
});

describe('layout and kubelet rules', () => {
  test('the kubelet nests each container in its pod cgroup as containerd does; the agent and Istio both attribute it', () => {
    const uid = '1e054806-e667-4109-a5af-08b3e6ba0c42';
    const id = 'ab'.repeat(32);
    const pod = podCgroup('lab1', uid);
    const path = containerCgroup(pod, id).replace(/^\/sys\/fs\/cgroup(\/unified)?/, '');
    assert.equal(path, `/ambit/lab1/kubepods/besteffort/pod${uid}/${id}`);
    assert.deepEqual(podFromCgroupPath(path), { uid, containerId: id });
    assert.deepEqual(istioPodOf(path), { uid, containerId: id });
    // The bare pod cgroup the lab used before: Istio's scan finds no pod in it (the agent still does).
    const bare = pod.replace(/^\/sys\/fs\/cgroup(\/unified)?/, '');
    assert.equal(istioPodOf(bare), undefined);
    assert.equal(podFromCgroupPath(bare)?.uid, uid);
  });

  test('components and per-node process names', () => {
    assert.equal(parseComponent('ztunnel'), 'ztunnel');
    assert.throws(() => parseComponent('istiod'), { code: 'LAB_BAD_COMPONENT' });
    assert.equal(processName({ component: 'apiserver' }), 'apiserver');
    const layout = new ClusterLayout('lab1');
    assert.equal(
      layout.logFile({ component: 'agent', node: 'n2' }),
      '/var/run/ambit/lab/lab1/logs/agent-n2.log',
    );
    assert.equal(layout.zdsSocket('n1'), '/var/run/ambit/lab/lab1/nodes/n1/ztunnel.sock');
  });

  test("a pod's lab app comes from its first container's image; unknown images run only the pause process", () => {
    const withImage = (image: string) => ({ spec: { containers: [{ name: 'c', image }] } }) as V1Pod;
    assert.equal(appOf(withImage('ambit.lab/httpbin')), 'httpbin');
    assert.equal(appOf(withImage('docker.io/kennethreitz/httpbin:latest')), 'httpbin');
    assert.equal(appOf(withImage('ambit.lab/sleep')), undefined);
    assert.equal(appOf({} as V1Pod), undefined);
  });

  test('a pending pod reports the kubelet message, else its reason, else a hint', () => {
    assert.equal(pendingReason(undefined), 'the pod was deleted');
    assert.equal(
      pendingReason({ status: { message: 'Failed to create pod sandbox: x', reason: 'R' } } as V1Pod),
      'Failed to create pod sandbox: x',
    );
    assert.match(pendingReason({ spec: { nodeName: 'n1', containers: [] } } as V1Pod), /kubelet of n1/);
  });
});
