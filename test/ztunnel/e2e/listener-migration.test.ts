/**
 * tcp_migrate_req in a pod whose ztunnel runs in an unprivileged container: there /proc/sys is a
 * read-only mount, so the plain sysctl write fails; ztunnel must still set it (through a private
 * read-write /proc/sys), or a rollout resets connections queued on the old ztunnel's listeners.
 * The container is simulated with a mount namespace whose /proc/sys is bound read-only.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nsRun, TestNetns } from '../../helpers/netns.js';

const MODULE = fileURLToPath(new URL('../../../src/ztunnel/inpod/listener-migration.js', import.meta.url));
const NETNS = fileURLToPath(new URL('../../../src/sys/index.js', import.meta.url));

/** Runs `script` (ESM, argv[1] = netns path) in a mount namespace with /proc/sys read-only. */
function inReadOnlyProcSys(script: string, netnsPath: string) {
  return spawnSync(
    'unshare',
    [
      '--mount',
      'sh',
      '-c',
      'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$0" "$@"',
      process.execPath,
      '--input-type=module',
      '-e',
      script,
      netnsPath,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
}

describe('tcp_migrate_req with a read-only /proc/sys (unprivileged container)', () => {
  const pod = new TestNetns();
  after(() => pod.remove());

  it('the plain write fails there, and enableListenerMigration still sets it in the pod netns', () => {
    assert.equal(nsRun(pod.name, 'sysctl', ['-n', 'net.ipv4.tcp_migrate_req']).trim(), '0');
    const plain = inReadOnlyProcSys(
      `import { spawnSync } from 'node:child_process';
       const r = spawnSync('nsenter', ['--net=' + process.argv[1], 'sysctl', '-qw', 'net.ipv4.tcp_migrate_req=1'], { encoding: 'utf8' });
       process.stdout.write(JSON.stringify({ status: r.status, stderr: r.stderr }));`,
      pod.path,
    );
    assert.equal(plain.status, 0, plain.stderr);
    const attempt = JSON.parse(plain.stdout);
    assert.notEqual(attempt.status, 0, 'the simulated container refuses the plain write');
    assert.match(attempt.stderr, /read-only|permission denied/i);
    assert.equal(nsRun(pod.name, 'sysctl', ['-n', 'net.ipv4.tcp_migrate_req']).trim(), '0');

    const r = inReadOnlyProcSys(
      `const { enableListenerMigration } = await import(${JSON.stringify(MODULE)});
       const { NetnsHandle } = await import(${JSON.stringify(NETNS)});
       const netns = NetnsHandle.open(process.argv[1]);
       const ok = await enableListenerMigration(netns);
       netns.close();
       process.stdout.write(JSON.stringify({ ok }));`,
      pod.path,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true }, r.stderr);
    assert.equal(nsRun(pod.name, 'sysctl', ['-n', 'net.ipv4.tcp_migrate_req']).trim(), '1');
  });
});
