/**
 * The access log as current Istio ztunnel prints it (reference ztunnel.md §7): tab-separated plain
 * line, lowercase level, target `access`, fields in ztunnel's order with strings quoted and addresses
 * bare, identities only for mutual TLS, the clusters of known workloads; and one JSON object per line
 * with LOG_FORMAT=json. The seed's other lines keep their tracing shape.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Service, Workload } from '../../../src/discovery/types.js';
import { logger, setLogFormat, setLogLevel, setLogSink } from '../../../src/runtime/log.js';
import { logConnectionComplete, logConnectionFailed } from '../../../src/ztunnel/proxy/access-log.js';
import type { ConnectionInfo } from '../../../src/ztunnel/proxy/connection-info.js';

function workload(name: string, ip: string): Workload {
  return {
    uid: `Kubernetes//v1/Pod/demo/${name}`,
    name,
    namespace: 'demo',
    serviceAccount: name,
    trustDomain: 'cluster.local',
    workloadIps: [ip],
    protocol: 'HBONE',
    node: 'n1',
    network: '',
    hostname: '',
    clusterId: 'Kubernetes',
    canonicalName: name,
    canonicalRevision: 'latest',
    workloadName: name,
    workloadType: 'deployment',
    status: 'Healthy',
    capacity: 1,
    services: new Map(),
    authorizationPolicies: [],
  };
}

const httpbinService: Service = {
  name: 'httpbin',
  namespace: 'demo',
  hostname: 'httpbin.demo.svc.cluster.local',
  vips: [{ network: '', address: '10.96.0.10' }],
  ports: new Map([[8000, 8080]]),
  subjectAltNames: [],
  canonical: true,
};

const SLEEP_ID = 'spiffe://cluster.local/ns/demo/sa/sleep';
const HTTPBIN_ID = 'spiffe://cluster.local/ns/demo/sa/httpbin';

/** sleep -> httpbin over HBONE, as the inbound (destination) ztunnel records it. */
const inbound = (): ConnectionInfo => ({
  direction: 'inbound',
  srcAddr: '10.244.1.2:40000',
  srcWorkload: workload('sleep', '10.244.1.2'),
  srcIdentity: SLEEP_ID,
  dstAddr: '10.244.2.2:15008',
  dstHboneAddr: '10.244.2.2:8080',
  dstWorkload: workload('httpbin', '10.244.2.2'),
  dstService: httpbinService,
  dstIdentity: HTTPBIN_ID,
  securityPolicy: 'mutual_tls',
  responseFlags: '-',
  startedAt: Date.now() - 3,
});

describe('access log', () => {
  const lines: string[] = [];
  beforeEach(() => {
    lines.length = 0;
    setLogSink({ write: (l: string) => void lines.push(l) });
  });
  afterEach(() => {
    setLogSink(process.stdout);
    setLogFormat('plain');
    setLogLevel('info');
  });

  it("connection complete: Istio's current plain line, every field in ztunnel's order", () => {
    logConnectionComplete(inbound(), 22, 11);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0]!,
      new RegExp(
        [
          '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z\tinfo\taccess\tconnection complete\t',
          'src\\.addr=10\\.244\\.1\\.2:40000 src\\.workload="sleep" src\\.namespace="demo" ',
          `src\\.identity="${SLEEP_ID}" src\\.cluster="Kubernetes" `,
          'dst\\.addr=10\\.244\\.2\\.2:15008 dst\\.hbone_addr=10\\.244\\.2\\.2:8080 ',
          'dst\\.service="httpbin\\.demo\\.svc\\.cluster\\.local" dst\\.workload="httpbin" dst\\.namespace="demo" ',
          `dst\\.identity="${HTTPBIN_ID}" dst\\.cluster="Kubernetes" `,
          'direction="inbound" bytes_sent=22 bytes_recv=11 duration="\\d+ms"\n$',
        ].join(''),
      ),
    );
  });

  it('without mutual TLS no identities; unknown workloads leave their fields out; errors at error level', () => {
    const plain: ConnectionInfo = {
      direction: 'outbound',
      srcAddr: '10.244.1.2:40001',
      dstAddr: '192.0.2.1:9',
      securityPolicy: 'unknown',
      responseFlags: 'CONNECT',
      srcIdentity: SLEEP_ID,
      startedAt: Date.now(),
    };
    logConnectionComplete(plain, 0, 0, 'connection failed: ENETUNREACH');
    assert.match(
      lines[0]!,
      /Z\terror\taccess\tconnection complete\tsrc\.addr=10\.244\.1\.2:40001 dst\.addr=192\.0\.2\.1:9 direction="outbound" bytes_sent=0 bytes_recv=0 duration="\d+ms" error="connection failed: ENETUNREACH"\n$/,
    );
    logConnectionFailed(
      { srcAddr: '10.0.0.1:1', dstAddr: '10.0.0.2:15008', direction: 'inbound' },
      'no cert',
    );
    assert.match(
      lines[1]!,
      /Z\twarn\taccess\tconnection failed\tsrc\.addr=10\.0\.0\.1:1 dst\.addr=10\.0\.0\.2:15008 direction="inbound" error="no cert"\n$/,
    );
  });

  it('the seed-shaped lines (inpod) are unchanged beside it', () => {
    logger('ztunnel::inpod::statemanager').info('pod received snapshot sent');
    assert.match(lines[0]!, /Z {2}INFO ztunnel::inpod::statemanager: pod received snapshot sent\n$/);
  });

  it('LOG_FORMAT=json: one JSON object per line with level, time, scope, message and the fields', () => {
    setLogFormat('json');
    logConnectionComplete(inbound(), 22, 11);
    logger('ztunnel::inpod::statemanager').info('pod received snapshot sent', { uid: 'u1' });
    logger('ztunnel::app').raw('inpod_enabled: true');
    assert.equal(lines.length, 3);
    const [access, inpod, raw] = lines.map((l) => {
      assert.ok(l.endsWith('\n') && !l.slice(0, -1).includes('\n'), l);
      return JSON.parse(l) as Record<string, unknown>;
    });
    assert.deepEqual(Object.keys(access!).slice(0, 4), ['level', 'time', 'scope', 'message']);
    assert.match(String(access!['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.deepEqual(
      { ...access, time: undefined, duration: undefined },
      {
        level: 'info',
        time: undefined,
        scope: 'access',
        message: 'connection complete',
        'src.addr': '10.244.1.2:40000',
        'src.workload': 'sleep',
        'src.namespace': 'demo',
        'src.identity': SLEEP_ID,
        'src.cluster': 'Kubernetes',
        'dst.addr': '10.244.2.2:15008',
        'dst.hbone_addr': '10.244.2.2:8080',
        'dst.service': 'httpbin.demo.svc.cluster.local',
        'dst.workload': 'httpbin',
        'dst.namespace': 'demo',
        'dst.identity': HTTPBIN_ID,
        'dst.cluster': 'Kubernetes',
        direction: 'inbound',
        bytes_sent: 22,
        bytes_recv: 11,
        duration: undefined,
      },
    );
    assert.match(String(access!['duration']), /^\d+ms$/);
    assert.deepEqual(
      { ...inpod, time: undefined },
      {
        level: 'info',
        time: undefined,
        scope: 'ztunnel::inpod::statemanager',
        message: 'pod received snapshot sent',
        uid: 'u1',
      },
    );
    assert.equal(raw!['message'], 'inpod_enabled: true');
  });
});
