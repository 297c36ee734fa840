/**
 * The workload manager's metrics (reference ztunnel.md §2.5), read from the state manager when
 * scraped: gauges of running and pending pod proxies, counters of proxies started and stopped.
 */
import { Counter, Gauge, type Registry } from '../../runtime/metrics.js';
import type { InPodStateManager } from './statemanager.js';

export function registerWorkloadManagerMetrics(registry: Registry, state: InPodStateManager): void {
  new Gauge({
    name: 'workload_manager_active_proxy_count',
    help: 'The total number current workloads with active proxies',
    registers: [registry],
    collect() {
      this.set(state.activeCount);
    },
  });
  new Gauge({
    name: 'workload_manager_pending_proxy_count',
    help: 'The total number current workloads with pending proxies',
    registers: [registry],
    collect() {
      this.set(state.pendingUids().length);
    },
  });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  counter(
    'workload_manager_proxies_started_total',
    'The total number of proxies that were started',
    () => state.proxiesStarted,
  );
  counter(
    'workload_manager_proxies_stopped_total',
    'The total number of proxies that were stopped',
    () => state.proxiesStopped,
  );
}
