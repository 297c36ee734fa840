/**
 * The CA root kept in the API as istiod keeps it: the first control plane stores its root in
 * istio-ca-secret and publishes it in istio-ca-root-cert; a later one (an empty CA dir, as a new pod's
 * emptyDir) serves the same root; a lost race for the Secret adopts the winner's root.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import { startControlPlane } from '../../src/controlplane/index.js';
import {
  CA_CERT_KEY,
  CA_KEY_KEY,
  CA_SECRET_TYPE,
  KubeCaStore,
  parseObjectRef,
  ROOT_CERT_KEY,
} from '../../src/controlplane/kube-ca-store.js';
import { LocalCa, ROOT_CERT_FILE, ROOT_KEY_FILE } from '../../src/identity/local-ca.js';
import { type ApiServer, startApiServer } from '../../src/lab/apiserver/index.js';
import { findResource } from '../../src/lab/apiserver/resources.js';

const R = {
  namespaces: findResource('', 'v1', 'namespaces')!,
  secrets: findResource('', 'v1', 'secrets')!,
  configmaps: findResource('', 'v1', 'configmaps')!,
};
const SECRET = { namespace: 'istio-system', name: 'istio-ca-secret' };
const CONFIGMAP = { namespace: 'istio-system', name: 'istio-ca-root-cert' };

interface Obj {
  type?: string;
  data?: Record<string, string>;
}

describe('control plane CA root in the Kubernetes API', () => {
  let dir: string;
  let api: ApiServer;
  let kubeconfig: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ambit-cp-kube-ca-'));
    kubeconfig = join(dir, 'kubeconfig');
    api = await startApiServer({ kubeconfigPath: kubeconfig });
    api.store.create(R.namespaces, undefined, { metadata: { name: 'istio-system' } });
  });

  after(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const secret = () => api.store.find(R.secrets, SECRET.namespace, SECRET.name) as Obj | undefined;
  const configMap = () =>
    api.store.find(R.configmaps, CONFIGMAP.namespace, CONFIGMAP.name) as Obj | undefined;
  const start = (caDir: string) =>
    startControlPlane({
      kubeconfig,
      caDir: join(dir, caDir),
      listen: '127.0.0.1:0',
      caSecret: SECRET,
      rootCertConfigMap: CONFIGMAP,
    });

  it('stores a new root, publishes it, and a control plane with an empty CA dir serves the same root', async () => {
    assert.equal(secret(), undefined);
    const first = await start('ca-1');
    let firstRoot: string;
    try {
      firstRoot = first.rootPem;
      const s = secret();
      assert.ok(s, 'istio-ca-secret was created');
      assert.equal(s.type, CA_SECRET_TYPE);
      const b64 = (k: string) => Buffer.from(s.data?.[k] ?? '', 'base64').toString('utf8');
      assert.equal(b64(CA_CERT_KEY), firstRoot);
      assert.equal(b64(ROOT_CERT_KEY), firstRoot);
      assert.equal(b64(CA_KEY_KEY), readFileSync(join(dir, 'ca-1', ROOT_KEY_FILE), 'utf8'));
      assert.equal(configMap()?.data?.[ROOT_CERT_KEY], firstRoot);
    } finally {
      await first.close();
    }

    const second = await start('ca-2');
    try {
      assert.equal(second.rootPem, firstRoot, 'the second control plane serves the stored root');
      assert.equal(readFileSync(join(dir, 'ca-2', ROOT_CERT_FILE), 'utf8'), firstRoot);
    } finally {
      await second.close();
    }
  });

  it('replaces a stale root in the ConfigMap', async () => {
    api.store.patch(R.configmaps, CONFIGMAP.namespace, CONFIGMAP.name, 'merge', {
      data: { [ROOT_CERT_KEY]: 'stale', other: 'kept' },
    });
    const cp = await start('ca-3');
    try {
      assert.equal(configMap()?.data?.[ROOT_CERT_KEY], cp.rootPem);
      assert.equal(configMap()?.data?.['other'], 'kept');
    } finally {
      await cp.close();
    }
  });

  it('a control plane that lost the race for the Secret adopts the stored root', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const store = new KubeCaStore(kc);
    const ref = { namespace: 'istio-system', name: 'ambit-race-secret' };
    const winner = await LocalCa.open(join(dir, 'race-winner'), { trustDomain: 'cluster.local' });
    assert.equal(await store.storeCaSecret(ref, join(dir, 'race-winner')), true);
    const loser = await LocalCa.open(join(dir, 'race-loser'), { trustDomain: 'cluster.local' });
    assert.notEqual(loser.rootPem, winner.rootPem);
    assert.equal(await store.storeCaSecret(ref, join(dir, 'race-loser')), false);
    const reopened = await LocalCa.open(join(dir, 'race-loser'), { trustDomain: 'cluster.local' });
    assert.equal(reopened.rootPem, winner.rootPem);
  });

  it('refuses a CA Secret without its key, naming what is missing', async () => {
    api.store.create(R.secrets, 'istio-system', {
      metadata: { name: 'ambit-broken-secret' },
      type: CA_SECRET_TYPE,
      data: { [CA_CERT_KEY]: Buffer.from('x').toString('base64') },
    });
    await assert.rejects(
      startControlPlane({
        kubeconfig,
        caDir: join(dir, 'ca-broken'),
        listen: '127.0.0.1:0',
        caSecret: { namespace: 'istio-system', name: 'ambit-broken-secret' },
      }),
      /CA secret istio-system\/ambit-broken-secret lacks ca-key\.pem/,
    );
  });

  it('--serving-dns: the serving certificate answers to the given names (a namespace other than istio-system)', async () => {
    const cp = await startControlPlane({
      kubeconfig,
      caDir: join(dir, 'ca-dns'),
      listen: '127.0.0.1:0',
      servingDns: ['istiod.mesh-x.svc', 'istiod'],
    });
    const handshake = async (servername: string): Promise<void> => {
      const s = connect({
        host: '127.0.0.1',
        port: cp.port,
        servername,
        ca: cp.rootPem,
        ALPNProtocols: ['h2'],
      });
      try {
        await once(s, 'secureConnect');
      } finally {
        s.destroy();
      }
    };
    try {
      await handshake('istiod.mesh-x.svc');
      await handshake('istiod');
      await assert.rejects(handshake('istiod.istio-system.svc'), /does not match certificate's altnames/);
    } finally {
      await cp.close();
    }
  });

  it('parses NAMESPACE/NAME references', () => {
    assert.deepEqual(parseObjectRef('istio-system/istio-ca-secret', '--ca-secret'), SECRET);
    assert.throws(
      () => parseObjectRef('istio-ca-secret', '--ca-secret'),
      /--ca-secret "istio-ca-secret" is not NAMESPACE\/NAME/,
    );
  });
});
