import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createWorkloadCsr } from '../../src/identity/csr.js';
import { LocalCa, ROOT_CERT_FILE, ROOT_KEY_FILE } from '../../src/identity/local-ca.js';
import { parseSpiffeId } from '../../src/identity/spiffe.js';
import { EC_P256, ECDSA_SHA256, SAN_OID, x509 } from '../../src/identity/x509.js';
import { tempDir } from './helpers.js';

const id = parseSpiffeId('spiffe://cluster.local/ns/ns1/sa/sa1');

async function csrWith(
  names: Array<{ type: 'url' | 'dns'; value: string }>,
  curve = 'P-256',
): Promise<string> {
  const keys = await crypto.subtle.generateKey({ ...EC_P256, namedCurve: curve }, true, ['sign', 'verify']);
  const extensions = names.length ? [new x509.SubjectAlternativeNameExtension(names, true)] : [];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: curve === 'P-256' ? ECDSA_SHA256 : { name: 'ECDSA', hash: 'SHA-384' },
    extensions,
  });
  return csr.toString('pem');
}

describe('local CA', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let caDir: string;
  let ca: LocalCa;

  before(async () => {
    dir = await tempDir();
    caDir = join(dir.path, 'ca');
    ca = await LocalCa.open(caDir, { trustDomain: 'cluster.local', maxTtlSeconds: 3600 });
  });
  after(() => dir.remove());

  it('creates its directory 0700 and root files 0600 on first use', async () => {
    assert.equal((await stat(caDir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(caDir, ROOT_KEY_FILE))).mode & 0o777, 0o600);
    assert.equal((await stat(join(caDir, ROOT_CERT_FILE))).mode & 0o777, 0o600);
    const root = new X509Certificate(await readFile(join(caDir, ROOT_CERT_FILE)));
    assert.equal(root.ca, true);
    assert.equal(root.verify(root.publicKey), true);
  });

  it('reuses the root on restart, so earlier leaves still chain to it', async () => {
    const csr = await createWorkloadCsr(id);
    const signed = await ca.sign(csr.csrPem, { ttlSeconds: 600, identity: id });
    const keyBefore = await readFile(join(caDir, ROOT_KEY_FILE), 'utf8');
    const reopened = await LocalCa.open(caDir, { trustDomain: 'cluster.local' });
    assert.equal(reopened.rootPem, ca.rootPem);
    assert.equal(await readFile(join(caDir, ROOT_KEY_FILE), 'utf8'), keyBefore);
    const leaf = new X509Certificate(signed.certChainPem[0]!);
    assert.equal(leaf.verify(new X509Certificate(reopened.rootPem).publicKey), true);
    const again = await reopened.sign((await createWorkloadCsr(id)).csrPem, {
      ttlSeconds: 600,
      identity: id,
    });
    assert.equal(
      new X509Certificate(again.certChainPem[0]!).verify(new X509Certificate(ca.rootPem).publicKey),
      true,
    );
  });

  it('issues a leaf with exactly the requested URI SAN (critical), empty subject, mTLS usages, chained to the root', async () => {
    const signed = await ca.sign((await createWorkloadCsr(id)).csrPem, { ttlSeconds: 600, identity: id });
    assert.equal(signed.certChainPem.length, 1);
    assert.equal(signed.rootPem, ca.rootPem);
    const leaf = new x509.X509Certificate(signed.certChainPem[0]!);
    assert.equal(leaf.subject, '');
    const sans = leaf.extensions.filter((e) => e.type === SAN_OID);
    assert.equal(sans.length, 1);
    assert.equal(sans[0]!.critical, true);
    assert.deepEqual(new x509.SubjectAlternativeNameExtension(sans[0]!.rawData).names.toJSON(), [
      { type: 'url', value: id },
    ]);
    const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension)!;
    assert.deepEqual(
      [...eku.usages].sort(),
      [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth].sort(),
    );
    const ku = leaf.getExtension(x509.KeyUsagesExtension)!;
    assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(leaf.getExtension(x509.BasicConstraintsExtension)!.ca, false);

    const root = new x509.X509Certificate(ca.rootPem);
    assert.equal(leaf.issuer, root.subject);
    const chain = await new x509.X509ChainBuilder({ certificates: [root] }).build(leaf);
    assert.equal(chain.length, 2);
    assert.equal(chain[1]!.serialNumber, root.serialNumber);
    assert.equal(await leaf.verify({ publicKey: root.publicKey, signatureOnly: true }), true);
    const nodeLeaf = new X509Certificate(signed.certChainPem[0]!);
    assert.equal(nodeLeaf.checkIssued(new X509Certificate(ca.rootPem)), true);
    assert.equal(nodeLeaf.subjectAltName, `URI:${id}`);
  });

  it('honours the requested TTL and shortens it to the maximum', async () => {
    const now = Date.UTC(2030, 0, 2, 3, 4, 5);
    const clocked = await LocalCa.open(caDir, {
      trustDomain: 'cluster.local',
      maxTtlSeconds: 3600,
      now: () => now,
    });
    const short = new x509.X509Certificate(
      (await clocked.sign((await createWorkloadCsr(id)).csrPem, { ttlSeconds: 4, identity: id }))
        .certChainPem[0]!,
    );
    assert.equal(short.notBefore.getTime(), now);
    assert.equal(short.notAfter.getTime() - short.notBefore.getTime(), 4000);
    const long = new x509.X509Certificate(
      (await clocked.sign((await createWorkloadCsr(id)).csrPem, { ttlSeconds: 86400, identity: id }))
        .certChainPem[0]!,
    );
    assert.equal(long.notAfter.getTime() - long.notBefore.getTime(), 3600 * 1000);
    for (const ttlSeconds of [0, -5, 1.5, Number.NaN]) {
      await assert.rejects(ca.sign((await createWorkloadCsr(id)).csrPem, { ttlSeconds, identity: id }), {
        code: 'ERR_CA_TTL',
      });
    }
  });

  const refusals: Array<[string, () => Promise<string>, string]> = [
    [
      'another trust domain',
      async () => csrWith([{ type: 'url', value: 'spiffe://other.td/ns/ns1/sa/sa1' }]),
      'ERR_TRUST_DOMAIN',
    ],
    [
      'two URI SANs',
      async () =>
        csrWith([
          { type: 'url', value: id },
          { type: 'url', value: 'spiffe://cluster.local/ns/ns1/sa/admin' },
        ]),
      'ERR_CSR_SAN',
    ],
    [
      'a URI SAN plus a DNS SAN',
      async () =>
        csrWith([
          { type: 'url', value: id },
          { type: 'dns', value: 'evil.example' },
        ]),
      'ERR_CSR_SAN',
    ],
    ['no SAN', async () => csrWith([]), 'ERR_CSR_SAN'],
    [
      'a non-SPIFFE URI',
      async () => csrWith([{ type: 'url', value: 'https://cluster.local/ns/ns1/sa/sa1' }]),
      'ERR_CSR_SAN',
    ],
    [
      'another identity than requested',
      async () => csrWith([{ type: 'url', value: 'spiffe://cluster.local/ns/ns1/sa/x' }]),
      'ERR_IDENTITY_MISMATCH',
    ],
    ['a P-384 key', async () => csrWith([{ type: 'url', value: id }], 'P-384'), 'ERR_CSR_KEY'],
    ['garbage text', async () => 'not a csr', 'ERR_CSR_INVALID'],
    [
      'a PEM with a broken body',
      async () => '-----BEGIN CERTIFICATE REQUEST-----\n@@@@\n-----END CERTIFICATE REQUEST-----\n',
      'ERR_CSR_INVALID',
    ],
    ['a certificate instead of a CSR', async () => ca.rootPem, 'ERR_CSR_INVALID'],
    [
      'a CSR whose signature does not verify',
      async () => {
        const der = Buffer.from(x509.PemConverter.decodeFirst((await createWorkloadCsr(id)).csrPem));
        der[der.length - 3]! ^= 0xff;
        return x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
      },
      'ERR_CSR_INVALID',
    ],
  ];
  for (const [what, make, code] of refusals) {
    it(`refuses a CSR with ${what} (${code})`, async () => {
      await assert.rejects(
        ca.sign(await make(), { ttlSeconds: 600, identity: id }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, code);
          assert.ok(err.message.length > 20, err.message);
          return true;
        },
      );
    });
  }

  it('refuses to open a directory holding another trust domain root, and changes nothing', async () => {
    const before = await readFile(join(caDir, ROOT_KEY_FILE), 'utf8');
    await assert.rejects(LocalCa.open(caDir, { trustDomain: 'other.td' }), { code: 'ERR_CA_TRUST_DOMAIN' });
    assert.equal(await readFile(join(caDir, ROOT_KEY_FILE), 'utf8'), before);
  });

  it('refuses a directory with only the root certificate instead of minting a new key', async () => {
    const half = join(dir.path, 'half');
    await LocalCa.open(half, { trustDomain: 'cluster.local' });
    await rm(join(half, ROOT_KEY_FILE));
    await assert.rejects(LocalCa.open(half, { trustDomain: 'cluster.local' }), { code: 'ERR_CA_FILES' });
    await assert.rejects(stat(join(half, ROOT_KEY_FILE)), { code: 'ENOENT' });
  });
});
