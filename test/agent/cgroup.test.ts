import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { podFromCgroupFile, podFromCgroupPath } from '../../src/agent/cgroup.js';

const UID = '863b91d4-4b68-4a8a-bc47-2a3a3a3a3a3a';
const CID = '9ad3f2c1e5b74f1f8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a';

describe('pod UID from cgroup paths', () => {
  const table: [string, string, { uid: string; containerId: string | undefined } | undefined][] = [
    ['cgroupfs', `/kubepods/burstable/pod${UID}/${CID}`, { uid: UID, containerId: CID }],
    [
      'systemd with underscores',
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replaceAll('-', '_')}.slice/cri-containerd-${CID}.scope`,
      { uid: UID, containerId: CID },
    ],
    [
      'the lab pod cgroup (no container level)',
      `/ambit/kubepods/pod${UID}`,
      { uid: UID, containerId: undefined },
    ],
    [
      'uid without separators',
      `/kubepods/pod${UID.replaceAll('-', '')}/${CID}`,
      { uid: UID, containerId: CID },
    ],
    [
      'upper-case hex canonicalised',
      `/kubepods/pod${UID.toUpperCase()}/${CID}`,
      { uid: UID, containerId: CID },
    ],
    ['cri-o path without a pod UID', `/machine.slice/crio-${CID}.scope`, undefined],
    ['root cgroup', '/', undefined],
    ['not a UID (too short)', `/kubepods/pod863b91d4-4b68/${CID}`, undefined],
    ['`pod` not after punctuation', `/kubepodsx${UID}/${CID}`, undefined],
  ];
  for (const [name, path, want] of table) {
    it(name, () => assert.deepEqual(podFromCgroupPath(path), want));
  }
});

describe('pod UID from a whole /proc/PID/cgroup file', () => {
  it('takes the pod from the unified line and ignores lines naming no pod', () => {
    const text = `9:name=systemd:/\n4:memory:/process_api/7680c19983517827a5265e39abc2a33f\n0::/ambit/kubepods/pod${UID}\n`;
    assert.deepEqual(podFromCgroupFile(text), { uid: UID, containerId: undefined });
  });

  it('agrees when every v1 line names the same container', () => {
    const line = (n: number, c: string) => `${n}:${c}:/kubepods/besteffort/pod${UID}/${CID}`;
    assert.equal(podFromCgroupFile([line(3, 'cpu'), line(2, 'memory')].join('\n'))?.uid, UID);
  });

  it('rejects lines naming different containers or pods', () => {
    const other = CID.replace(/^9/, '8');
    assert.throws(
      () => podFromCgroupFile(`3:cpu:/kubepods/pod${UID}/${CID}\n2:memory:/kubepods/pod${UID}/${other}`),
      { code: 'AGENT_CGROUP_AMBIGUOUS' },
    );
    const otherUid = UID.replace(/^8/, '7');
    assert.throws(
      () => podFromCgroupFile(`3:cpu:/kubepods/pod${UID}/${CID}\n2:memory:/kubepods/pod${otherUid}/${CID}`),
      {
        code: 'AGENT_CGROUP_AMBIGUOUS',
      },
    );
  });

  it('rejects a line that is not hier:controllers:path', () => {
    assert.throws(() => podFromCgroupFile('garbage'), { code: 'AGENT_CGROUP_INVALID' });
  });

  it('a file without pods names none', () => {
    assert.equal(podFromCgroupFile('0::/\n'), undefined);
  });
});
