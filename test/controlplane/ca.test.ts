/**
 * The Istio CA over real gRPC + TLS with @grpc/grpc-js clients: identity from the TokenReview'd token,
 * impersonation only by the node proxy for pods on its node, and refusals with statuses and reasons.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { IstioCaClient } from '../../src/identity/ca-client.js';
import { createWorkloadCsr } from '../../src/identity/csr.js';
import { CertificateManager } from '../../src/identity/manager.js';
import { parseSpiffeId } from '../../src/identity/spiffe.js';
import { uriSans, x509 } from '../../src/identity/x509.js';
import { stringStruct } from '../../src/xds/messages.js';
import { CERTIFICATE_SERVICE } from '../../src/xds/services.js';
import { Harness } from './helpers.js';

const ZTUNNEL = 'spiffe://cluster.local/ns/istio-system/sa/ztunnel';
const APP = parseSpiffeId('spiffe://cluster.local/ns/shop/sa/cart');

describe('control plane CA', () => {
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
    h.pod({
      namespace: 'istio-system',
      name: 'ztunnel-b',
      ip: '10.9.0.3',
      node: 'node-b',
      serviceAccount: 'ztunnel',
    });
    h.pod({ namespace: 'shop', name: 'cart-1', ip: '10.9.1.2', node: 'node-a', serviceAccount: 'cart' });
    raw = new Client(h.cp.address, credentials.createSsl(Buffer.from(h.cp.rootPem)));
  });
  after(async () => {
    raw.close();
    await h.stop();
  });

  /** A plain unary call: the test controls every byte of metadata and request. */
  function call(req: object, token?: string): Promise<{ certChain: string[] }> {
    const m = CERTIFICATE_SERVICE.CreateCertificate;
    const md = new Metadata();
    if (token) md.set('authorization', `Bearer ${token}`);
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

  async function refused(p: Promise<unknown>, code: status, reason: RegExp): Promise<void> {
    await assert.rejects(p, (err: ServiceError) => {
      assert.equal(err.code, code, `status ${status[err.code]}: ${err.details}`);
      assert.match(err.details, reason);
      return true;
    });
  }

  it('issues a certificate for the caller own identity: exact SAN, chains to the root, honours validity', async () => {
    const token = await h.token('shop', 'cart');
    const csr = await createWorkloadCsr(APP);
    const res = await call({ csr: csr.csrPem, validityDuration: 3600 }, token);
    assert.equal(res.certChain.length, 2);
    const leaf = new x509.X509Certificate(res.certChain[0]!);
    const root = new x509.X509Certificate(res.certChain[1]!);
    assert.equal(res.certChain[1], h.cp.rootPem);
    assert.deepEqual(uriSans(leaf.extensions), [APP]);
    assert.equal(await leaf.verify({ publicKey: root.publicKey, signatureOnly: true }), true);
    assert.equal((leaf.notAfter.getTime() - leaf.notBefore.getTime()) / 1000, 3600);
  });

  it('refuses a CSR for a foreign identity', async () => {
    const token = await h.token('shop', 'cart');
    const csr = await createWorkloadCsr(parseSpiffeId('spiffe://cluster.local/ns/bank/sa/vault'));
    await refused(
      call({ csr: csr.csrPem, validityDuration: 3600 }, token),
      status.PERMISSION_DENIED,
      /bank\/sa\/vault/,
    );
  });

  it('refuses a caller without a token, or with a token for another audience', async () => {
    const csr = await createWorkloadCsr(APP);
    await refused(call({ csr: csr.csrPem, validityDuration: 3600 }), status.UNAUTHENTICATED, /Bearer/);
    const wrong = await h.token('shop', 'cart', { audiences: ['someone-else'] });
    await refused(
      call({ csr: csr.csrPem, validityDuration: 3600 }, wrong),
      status.UNAUTHENTICATED,
      /audiences/,
    );
    await refused(
      call({ csr: csr.csrPem, validityDuration: 3600 }, 'not-a-token'),
      status.UNAUTHENTICATED,
      /token/,
    );
  });

  it('refuses malformed input with INVALID_ARGUMENT and a reason, and keeps serving', async () => {
    const token = await h.token('shop', 'cart');
    await refused(
      call({ csr: 'garbage', validityDuration: 3600 }, token),
      status.INVALID_ARGUMENT,
      /CERTIFICATE REQUEST/,
    );
    const bad = '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n';
    await refused(
      call({ csr: bad, validityDuration: 3600 }, token),
      status.INVALID_ARGUMENT,
      /cannot be parsed/,
    );
    const csr = await createWorkloadCsr(APP);
    await refused(
      call({ csr: csr.csrPem, validityDuration: 365 * 86400 }, token),
      status.INVALID_ARGUMENT,
      /max allowed TTL/,
    );
    await refused(
      call({ csr: csr.csrPem, validityDuration: -5 }, token),
      status.INVALID_ARGUMENT,
      /positive/,
    );
    const md = {
      csr: csr.csrPem,
      validityDuration: 60,
      metadata: stringStruct({ ImpersonatedIdentity: 'spiffe://x' }),
    };
    await refused(call(md, token), status.INVALID_ARGUMENT, /ImpersonatedIdentity/);
    const ok = await call({ csr: csr.csrPem, validityDuration: 60 }, token);
    assert.equal(ok.certChain.length, 2);
  });

  it('lets the node proxy impersonate only pods scheduled on its own node', async () => {
    const onNodeA = await h.token('istio-system', 'ztunnel', { pod: 'ztunnel-a' });
    const onNodeB = await h.token('istio-system', 'ztunnel', { pod: 'ztunnel-b' });
    const unbound = await h.token('istio-system', 'ztunnel');
    const csr = await createWorkloadCsr(APP);
    const req = {
      csr: csr.csrPem,
      validityDuration: 600,
      metadata: stringStruct({ ImpersonatedIdentity: APP }),
    };
    const res = await call(req, onNodeA);
    assert.deepEqual(uriSans(new x509.X509Certificate(res.certChain[0]!).extensions), [APP]);
    await refused(call(req, onNodeB), status.PERMISSION_DENIED, /node-b/);
    await refused(call(req, unbound), status.PERMISSION_DENIED, /not bound to a pod/);
    const app = await h.token('shop', 'cart');
    const other = await createWorkloadCsr(parseSpiffeId(ZTUNNEL));
    const asApp = {
      csr: other.csrPem,
      validityDuration: 600,
      metadata: stringStruct({ ImpersonatedIdentity: ZTUNNEL }),
    };
    await refused(call(asApp, app), status.PERMISSION_DENIED, /not a node proxy/);
  });

  it('IstioCaClient feeds the CertificateManager as ztunnel does (token file, ImpersonatedIdentity)', async () => {
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const tokenFile = join(h.dir, 'istio-token');
    writeFileSync(tokenFile, await h.token('istio-system', 'ztunnel', { pod: 'ztunnel-a' }));
    const client = new IstioCaClient({
      address: `https://${h.cp.address}`,
      rootPem: h.cp.rootPem,
      token: tokenFile,
    });
    const manager = new CertificateManager({ ca: client, ttlSeconds: 600 });
    try {
      const cert = await manager.fetch(APP);
      assert.equal(cert.identity, APP);
      assert.equal(cert.rootPem, h.cp.rootPem);
      const foreign = parseSpiffeId('spiffe://cluster.local/ns/bank/sa/vault');
      await assert.rejects(manager.fetch(foreign), (err: Error & { code: string }) => {
        assert.equal(err.code, 'ERR_CERT_UNAVAILABLE');
        assert.match(err.message, /PERMISSION_DENIED/);
        return true;
      });
    } finally {
      manager.close();
      client.close();
    }
  });

  it('IstioCaClient: the first request once the CA is back after an outage is served (no reconnect back-off in the way)', async () => {
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { startControlPlane } = await import('../../src/controlplane/index.js');
    const start = (listen: string) =>
      startControlPlane({ kubeconfig: join(h.dir, 'kubeconfig'), caDir: join(h.dir, 'ca'), listen });
    let cp = await start('127.0.0.1:0');
    const tokenFile = join(h.dir, 'cart-token');
    writeFileSync(tokenFile, await h.token('shop', 'cart'));
    const client = new IstioCaClient({
      address: `https://${cp.address}`,
      rootPem: cp.rootPem,
      token: tokenFile,
    });
    const sign = async () =>
      client.sign((await createWorkloadCsr(APP)).csrPem, { ttlSeconds: 3600, identity: APP });
    try {
      assert.equal((await sign()).rootPem, cp.rootPem);
      await cp.close();
      // The outage: requests fail as unreachable (the first one after a failed connection attempt).
      for (let i = 0; i < 3; i++)
        await assert.rejects(sign(), (err: Error & { code: string }) => {
          assert.equal(err.code, 'ERR_CA_UNAVAILABLE', err.message);
          return true;
        });
      cp = await start(cp.address);
      // grpc-js would fail calls fast until its own reconnect back-off (1 s growing to 120 s) let it dial
      // again; the manager paces retries itself, so the client must dial as soon as it is asked.
      const signed = await sign();
      assert.equal(signed.rootPem, cp.rootPem);
    } finally {
      client.close();
      await cp.close();
    }
  });
});
