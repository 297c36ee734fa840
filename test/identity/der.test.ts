/**
 * The hand-written DER of ztunnel's identity path (src/identity/der.ts) against independent readers:
 * OpenSSL verifies and prints the CSR; certificates made by @peculiar/x509 and by OpenSSL give their
 * URI SANs back in order; anything malformed is a coded error, never a crash or a wrong answer.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createWorkloadCsr } from '../../src/identity/csr.js';
import { certificateUriSans } from '../../src/identity/der.js';
import { pemBlocks, pemEncode, splitPemBundle } from '../../src/identity/pem.js';
import { parseSpiffeId } from '../../src/identity/spiffe.js';
import { ECDSA_SHA256, generateP256, randomSerialHex, x509 } from '../../src/identity/x509.js';

const dir = mkdtempSync(join(tmpdir(), 'ambit-der-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const openssl = (args: string[], input?: string) =>
  execFileSync('openssl', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });

describe('DER of the identity path', () => {
  const identity = parseSpiffeId('spiffe://cluster.local/ns/ambient-demo/sa/sleep');

  it('the CSR verifies with OpenSSL: empty subject, P-256 key, ecdsa-with-SHA256, critical URI SAN', async () => {
    const { csrPem } = await createWorkloadCsr(identity);
    const file = join(dir, 'req.pem');
    writeFileSync(file, csrPem);
    const text = openssl(['req', '-in', file, '-noout', '-verify', '-text']);
    assert.match(text, /Subject:\s*\n/);
    assert.match(text, /ASN1 OID: prime256v1/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(
      text,
      /X509v3 Subject Alternative Name: critical\s*\n\s*URI:spiffe:\/\/cluster\.local\/ns\/ambient-demo\/sa\/sleep/,
    );
  });

  it('reads URI SANs, in order, from certificates made by @peculiar/x509 and by OpenSSL', async () => {
    const keys = await generateP256();
    const made = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerialHex(),
      name: 'CN=test',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      keys,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.SubjectAlternativeNameExtension(
          [
            { type: 'dns', value: 'a.example' },
            { type: 'url', value: 'spiffe://td/ns/a/sa/b' },
            { type: 'url', value: 'spiffe://td/ns/c/sa/d' },
          ],
          true,
        ),
      ],
    });
    assert.deepEqual(certificateUriSans(Buffer.from(made.rawData)), [
      'spiffe://td/ns/a/sa/b',
      'spiffe://td/ns/c/sa/d',
    ]);

    const key = join(dir, 'k.pem');
    const cert = join(dir, 'c.pem');
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
    openssl([
      ...['req', '-new', '-x509', '-key', key, '-out', cert, '-days', '1', '-subj', '/CN=x'],
      ...['-addext', 'subjectAltName=URI:spiffe://cluster.local/ns/x/sa/y,IP:10.0.0.1'],
    ]);
    const der = pemBlocks(execFileSync('cat', [cert], { encoding: 'utf8' }), 'CERTIFICATE')[0]!;
    assert.deepEqual(certificateUriSans(der), ['spiffe://cluster.local/ns/x/sa/y']);
    // No SAN at all: none, not an error.
    openssl(['req', '-new', '-x509', '-key', key, '-out', cert, '-days', '1', '-subj', '/CN=x']);
    assert.deepEqual(
      certificateUriSans(pemBlocks(execFileSync('cat', [cert], { encoding: 'utf8' }), 'CERTIFICATE')[0]!),
      [],
    );
  });

  it('malformed input is ERR_DER: truncated, overlong, wrong tags, garbage', async () => {
    const { csrPem } = await createWorkloadCsr(identity);
    const good = pemBlocks(csrPem, 'CERTIFICATE REQUEST')[0]!;
    for (const bad of [
      Buffer.alloc(0),
      Buffer.from([0x30]),
      Buffer.from([0x30, 0x85, 1, 2, 3, 4, 5]),
      Buffer.from([0x30, 0x10, 0x30, 0x00]),
      Buffer.from([0x02, 0x01, 0x00]),
      good.subarray(0, good.length - 5),
      Buffer.from('not DER at all'),
    ]) {
      assert.throws(() => certificateUriSans(bad), { code: 'ERR_DER' }, bad.toString('hex'));
    }
  });

  it('PEM: encode, split a bundle, ignore other blocks', () => {
    const a = pemEncode(Buffer.from('first'), 'CERTIFICATE');
    const b = pemEncode(Buffer.alloc(100, 7), 'CERTIFICATE');
    const key = pemEncode(Buffer.from('k'), 'PRIVATE KEY');
    assert.deepEqual(splitPemBundle(`${a}\n${key}\n${b}\n`), [a, b]);
    assert.ok(b.split('\n').every((l) => l.length <= 64));
    assert.deepEqual(pemBlocks(`${a}\n${b}`, 'CERTIFICATE')[1], Buffer.alloc(100, 7));
  });
});
