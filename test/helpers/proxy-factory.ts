/**
 * A ztunnel ProxyFactory for the tests that run pod proxies in namespaces of their own: the
 * settings ztunnel starts with (mark 0x539, port reuse, a 10 s connect timeout, a 1 s drain, no
 * SOCKS5, an empty store and registry), each replaceable.
 */
import { WorkloadStore } from '../../src/discovery/store.js';
import { Registry } from '../../src/runtime/metrics.js';
import { TrafficMetrics } from '../../src/ztunnel/proxy/metrics.js';
import { ProxyFactory, type ProxyFactoryOptions } from '../../src/ztunnel/proxy-factory.js';

export function testProxyFactory(
  options: Partial<ProxyFactoryOptions> & { registry?: Registry } = {},
): ProxyFactory {
  const { registry = new Registry(), ...rest } = options;
  return new ProxyFactory({
    store: new WorkloadStore(),
    metrics: new TrafficMetrics(registry),
    mark: 0x539,
    portReuse: true,
    connectTimeoutMs: 10_000,
    drainDeadlineMs: 1000,
    socks5: false,
    ...rest,
  });
}
