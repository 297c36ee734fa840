import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { describe, it } from 'node:test';
import { createWorkloadCsr } from '../../src/identity/csr.js';
import { parseSpiffeId } from '../../src/identity/spiffe.js';
import { SAN_OID, x509 } from '../../src/identity/x509.js';

describe('workload CSR', () => {
  const identity = parseSpiffeId('spiffe://cluster.local/ns/ambient-demo/sa/sleep');

  it('has an empty subject, exactly one critical SAN extension holding only the URI, P-256 / SHA-256', async () => {
    const { csrPem, privateKeyPem } = await createWorkloadCsr(identity);
    const csr = new x509.Pkcs10CertificateRequest(csrPem);
    assert.equal(csr.subject, '');
    assert.equal(csr.subjectName.toJSON().length, 0);
    assert.equal(csr.extensions.length, 1);
    const ext = csr.extensions[0]!;
    assert.equal(ext.type, SAN_OID);
    assert.equal(ext.critical, true);
    const names = new x509.SubjectAlternativeNameExtension(ext.rawData).names.toJSON();
    assert.deepEqual(names, [{ type: 'url', value: identity }]);
    assert.deepEqual(csr.publicKey.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
    const signature = csr.signatureAlgorithm as unknown as { name: string; hash: { name: string } };
    assert.equal(signature.name, 'ECDSA');
    assert.equal(signature.hash.name, 'SHA-256');
    assert.equal(await csr.verify(), true);

    const key = createPrivateKey(privateKeyPem);
    assert.match(privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
    assert.ok(spki.equals(Buffer.from(csr.publicKey.rawData)), 'the private key belongs to the CSR');
  });

  it('uses a fresh key for every request', async () => {
    const a = await createWorkloadCsr(identity);
    const b = await createWorkloadCsr(identity);
    assert.notEqual(a.privateKeyPem, b.privateKeyPem);
  });
});
