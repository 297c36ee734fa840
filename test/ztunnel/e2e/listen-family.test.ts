/**
 * The pod listeners' address family (issue 16): on [::] by default, one dual-stack socket per port
 * that IPv4 and IPv6 clients reach (ss lists it as `*:port` among the IPv6 sockets); with IPV6_ENABLED
 * false (Istio's ztunnel variable) on 0.0.0.0, IPv4 only, with no IPv6 socket at all.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { NetnsHandle } from '../../../src/sys/index.js';
import type { WorkloadUid } from '../../../src/zds/messages.js';
import type { ProxyFactory } from '../../../src/ztunnel/proxy-factory.js';
import { VethPair } from '../../helpers/netns.js';
import { testProxyFactory } from '../../helpers/proxy-factory.js';

const pairs: VethPair[] = [];
const factories: ProxyFactory[] = [];

after(async () => {
  for (const f of factories) await Promise.all([...f.proxies.values()].map((p) => p.stop('immediate')));
  for (const p of pairs) p.remove();
});

/** A pod netns with the proxy's listeners; returns the pod's `ss -Hntl` for IPv4 and for IPv6. */
async function listenersWith(ipv6Enabled: boolean | undefined): Promise<{ v4: string; v6: string }> {
  const pair = new VethPair();
  pairs.push(pair);
  const factory = testProxyFactory(ipv6Enabled === undefined ? {} : { ipv6Enabled });
  factories.push(factory);
  const netns = NetnsHandle.open(pair.a.path);
  try {
    await factory.start(
      'pod-a' as WorkloadUid,
      { name: 'a', namespace: 'default', serviceAccount: 'default' },
      netns,
    );
  } finally {
    netns.close();
  }
  return { v4: pair.a.exec('ss', ['-4', '-Hntl']), v6: pair.a.exec('ss', ['-6', '-Hntl']) };
}

describe('pod listener family', () => {
  test('default: 15001, 15006 and 15008 on [::], dual-stack', async () => {
    const { v4, v6 } = await listenersWith(undefined);
    for (const port of [15001, 15006, 15008]) {
      assert.match(v6, new RegExp(`\\s\\*:${port}\\s`), `[::]:${port} in:\n${v6}`);
      assert.doesNotMatch(v4, new RegExp(`:${port}\\s`), 'no separate IPv4 socket');
    }
  });

  test('IPV6_ENABLED=false: on 0.0.0.0, no IPv6 socket', async () => {
    const { v4, v6 } = await listenersWith(false);
    for (const port of [15001, 15006, 15008]) {
      assert.match(v4, new RegExp(`\\s0\\.0\\.0\\.0:${port}\\s`), `0.0.0.0:${port} in:\n${v4}`);
      assert.doesNotMatch(v6, new RegExp(`:${port}\\s`), `no IPv6 socket in:\n${v6}`);
    }
  });
});
