/**
 * The control plane on `[::]` (issue 16): one dual-stack listener that a ztunnel reaches over IPv6 and
 * over IPv4, the certificate naming both serving IPs, as the chart runs it so IPv6-only and
 * dual-stack clusters reach istiod.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IstioCaClient } from '../../src/identity/ca-client.js';
import { createWorkloadCsr } from '../../src/identity/csr.js';
import { parseSpiffeId } from '../../src/identity/spiffe.js';
import { Harness } from './helpers.js';

const APP = parseSpiffeId('spiffe://cluster.local/ns/shop/sa/cart');

describe('control plane on [::]', () => {
  let h: Harness;
  before(async () => {
    h = await Harness.start({ listen: '[::]:0', servingIps: ['::1', '127.0.0.1'] });
  });
  after(async () => {
    await h?.stop();
  });

  it('signs for a client over IPv6 ([::1]) and over IPv4 (127.0.0.1) on the same port', async () => {
    const port = Number(/:(\d+)$/.exec(h.cp.address)![1]);
    assert.match(h.cp.address, /^\[::\]:\d+$/);
    const tokenFile = join(h.dir, 'cart-token');
    h.serviceAccount('shop', 'cart');
    writeFileSync(tokenFile, await h.token('shop', 'cart'));
    for (const host of ['[::1]', '127.0.0.1']) {
      const client = new IstioCaClient({
        address: `https://${host}:${port}`,
        rootPem: h.cp.rootPem,
        token: tokenFile,
      });
      try {
        const signed = await client.sign((await createWorkloadCsr(APP)).csrPem, {
          ttlSeconds: 3600,
          identity: APP,
        });
        assert.equal(signed.rootPem, h.cp.rootPem, `signed over ${host}`);
      } finally {
        client.close();
      }
    }
  });
});
