/**
 * The attack from issue 12, end to end against the lab API server and the control plane's CA: an
 * application pod takes its own service-account token, asks the API server for a token of
 * `istio-system/ztunnel` bound to the node's ztunnel pod, and with it asks the CA for another pod's
 * identity (ztunnel may impersonate pods on its node). It must fail at the first step.
 */
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { createWorkloadCsr } from '../../src/identity/csr.js';
import { parseSpiffeId } from '../../src/identity/spiffe.js';
import { stringStruct } from '../../src/xds/messages.js';
import { CERTIFICATE_SERVICE } from '../../src/xds/services.js';
import { Harness } from '../controlplane/helpers.js';

const VICTIM = parseSpiffeId('spiffe://cluster.local/ns/bank/sa/payments');

describe('attack: application token -> ztunnel token -> another pod identity', () => {
  let h: Harness;
  let raw: Client;

  before(async () => {
    h = await Harness.start();
    h.pod({
      namespace: 'istio-system',
      name: 'ztunnel-a',
      ip: '10.9.0.2',
      node: 'node-a',
      serviceAccount: 'ztunnel',
    });
    h.pod({ namespace: 'shop', name: 'evil-1', ip: '10.9.1.2', node: 'node-a', serviceAccount: 'default' });
    h.pod({
      namespace: 'bank',
      name: 'payments-1',
      ip: '10.9.1.3',
      node: 'node-a',
      serviceAccount: 'payments',
    });
    raw = new Client(h.cp.address, credentials.createSsl(Buffer.from(h.cp.rootPem)));
  });
  after(async () => {
    raw.close();
    await h.stop();
  });

  function post(path: string, token: string, body: object): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, h.api.url),
        {
          method: 'POST',
          ca: h.api.caPem,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        },
        (res) => {
          let out = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            out += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(out) as unknown }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  }

  function createCertificate(req: object, token: string): Promise<{ certChain: string[] }> {
    const m = CERTIFICATE_SERVICE.CreateCertificate;
    const md = new Metadata();
    md.set('authorization', `Bearer ${token}`);
    return new Promise((resolve, reject) =>
      raw.makeUnaryRequest(
        m.path,
        (r: object) => m.requestSerialize(r as never),
        m.responseDeserialize,
        req,
        md,
        (err: ServiceError | null, res?: { certChain: string[] }) => (err ? reject(err) : resolve(res!)),
      ),
    );
  }

  it('the application token cannot mint a ztunnel token, so the CA never sees one', async () => {
    // What the kubelet projects into the attacker's pod: its own default service account, API audience.
    const appToken = await h.token('shop', 'default', {
      pod: 'evil-1',
      audiences: ['https://kubernetes.default.svc.cluster.local'],
    });
    const minted = await post('/api/v1/namespaces/istio-system/serviceaccounts/ztunnel/token', appToken, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: ['istio-ca'],
        expirationSeconds: 3600,
        boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'ztunnel-a' },
      },
    });
    const ztunnelToken = (minted.body as { status?: { token?: string } }).status?.token;
    let stolen = 'no certificate requested';
    if (ztunnelToken) {
      // The rest of the chain, run only to report how far the attack got when step one fails open.
      const csr = await createWorkloadCsr(VICTIM);
      stolen = await createCertificate(
        { csr: csr.csrPem, validityDuration: 600, metadata: stringStruct({ ImpersonatedIdentity: VICTIM }) },
        ztunnelToken,
      ).then(
        (res) => `the CA issued ${VICTIM} (${res.certChain.length} certificates)`,
        (err: ServiceError) => `the CA refused: ${err.details}`,
      );
    }
    assert.equal(minted.status, 403, `TokenRequest answered ${minted.status}; ${stolen}`);
    assert.deepEqual(minted.body, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'serviceaccounts "ztunnel" is forbidden: User "system:serviceaccount:shop:default" cannot create resource "serviceaccounts/token" in API group "" in the namespace "istio-system"',
      reason: 'Forbidden',
      details: { name: 'ztunnel', kind: 'serviceaccounts' },
      code: 403,
    });
  });
});
