import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { inspect } from 'node:util';
import type { CertificateAuthority } from '../../src/identity/ca.js';
import type { WorkloadCertificate } from '../../src/identity/certificate.js';
import { createWorkloadCsr } from '../../src/identity/csr.js';
import { LocalCa } from '../../src/identity/local-ca.js';
import { CertificateManager } from '../../src/identity/manager.js';
import { parseSpiffeId, type SpiffeId } from '../../src/identity/spiffe.js';
import { setLogSink } from '../../src/runtime/log.js';
import { SwitchableCa, tempDir } from './helpers.js';

const a = parseSpiffeId('spiffe://cluster.local/ns/ns1/sa/a');
const b = parseSpiffeId('spiffe://cluster.local/ns/ns1/sa/b');

/** Resolves with the next 'rotated' event for `identity`. */
async function nextRotation(
  manager: CertificateManager,
  identity: SpiffeId,
): Promise<[WorkloadCertificate, WorkloadCertificate | undefined]> {
  for (;;) {
    const [id, cert, previous] = await once(manager, 'rotated');
    if (id === identity) return [cert, previous];
  }
}

describe('certificate manager', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let ca: LocalCa;
  let keepAlive: NodeJS.Timeout;
  const logLines: string[] = [];

  before(async () => {
    dir = await tempDir();
    ca = await LocalCa.open(join(dir.path, 'ca'), { trustDomain: 'cluster.local' });
    // The manager's timers are unref'd on purpose; this keeps the test process up while waiting for them.
    keepAlive = setInterval(() => {}, 1000);
    setLogSink({ write: (line: string) => logLines.push(line) });
  });
  after(async () => {
    clearInterval(keepAlive);
    setLogSink(process.stdout);
    await dir.remove();
  });

  it('rotates a short-lived certificate at half-life, before it expires', async () => {
    const manager = new CertificateManager({ ca, ttlSeconds: 4 });
    try {
      const first = await manager.fetch(a);
      assert.equal(first.notAfter.getTime() - first.notBefore.getTime(), 4000);
      assert.equal(first.refreshAt(), first.notBefore.getTime() + 2000);
      assert.deepEqual(manager.state(a), { state: 'Available', certificate: first.toJSON() });
      const [second, previous] = await nextRotation(manager, a);
      assert.equal(previous, first);
      assert.notEqual(second.serialNumber, first.serialNumber);
      assert.ok(second.notBefore.getTime() < first.notAfter.getTime(), 'renewed before the old one expired');
      assert.equal(manager.current(a), second);
      assert.equal(await manager.fetch(a), second);
    } finally {
      manager.close();
    }
  });

  it('backs off on CA failure, keeps serving the valid certificate, then recovers', async () => {
    const flaky = new SwitchableCa(ca);
    const manager = new CertificateManager({
      ca: flaky,
      ttlSeconds: 4,
      initialBackoffMs: 100,
      maxBackoffMs: 300,
    });
    try {
      const first = await manager.fetch(a);
      flaky.failing = true;
      const delays: number[] = [];
      while (delays.length < 3) {
        const [id, err, retryInMs] = await once(manager, 'refresh-failed');
        assert.equal(id, a);
        assert.equal(err.code, 'ERR_CA_UNREACHABLE');
        delays.push(retryInMs);
        assert.equal(manager.current(a), first, 'the still-valid certificate keeps being served');
        assert.equal(manager.state(a)?.state, 'Available');
        assert.equal(await manager.fetch(a), first);
      }
      assert.deepEqual(delays, [100, 200, 300]);
      flaky.failing = false;
      const [renewed, previous] = await nextRotation(manager, a);
      assert.equal(previous, first);
      assert.notEqual(renewed.serialNumber, first.serialNumber);
      assert.equal(manager.state(a)?.state, 'Available');
    } finally {
      manager.close();
    }
  });

  it('is Unavailable with the reason while the CA fails and no certificate exists, then recovers', async () => {
    const flaky = new SwitchableCa(ca);
    flaky.failing = true;
    const manager = new CertificateManager({
      ca: flaky,
      ttlSeconds: 60,
      initialBackoffMs: 50,
      maxBackoffMs: 100,
    });
    try {
      assert.equal(manager.state(a), undefined);
      await assert.rejects(manager.fetch(a), { code: 'ERR_CERT_UNAVAILABLE' });
      assert.deepEqual(manager.state(a), {
        state: 'Unavailable',
        code: 'ERR_CA_UNREACHABLE',
        reason: 'test CA is down',
      });
      await assert.rejects(manager.fetch(a), /test CA is down/);
      flaky.failing = false;
      const [cert, previous] = await nextRotation(manager, a);
      assert.equal(previous, undefined);
      assert.equal(await manager.fetch(a), cert);
      assert.equal(manager.state(a)?.state, 'Available');
    } finally {
      manager.close();
    }
  });

  it('resets the back-off once the CA answers again: a new identity and the pending ones are served without waiting it out', async () => {
    // A fake clock: the manager's timers fire only when the test advances it, so the schedule is
    // what is asserted, not how fast this machine is.
    mock.timers.enable({ apis: ['setTimeout'] });
    let now = Date.now();
    const advance = (ms: number) => {
      now += ms;
      mock.timers.tick(ms);
    };
    /** Polls with setImmediate (not mocked) until `check` holds or 30 s of real time pass. */
    const until = async (what: string, check: () => boolean) => {
      const deadline = Date.now() + 30_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setImmediate(r));
      }
    };
    const flaky = new SwitchableCa(ca);
    flaky.failing = true;
    const manager = new CertificateManager({
      ca: flaky,
      ttlSeconds: 3600,
      initialBackoffMs: 1000,
      maxBackoffMs: 150_000,
      now: () => now,
    });
    const c = parseSpiffeId('spiffe://cluster.local/ns/ns1/sa/c');
    const retries = new Map<SpiffeId, number[]>();
    manager.on('refresh-failed', (id, _err, retryInMs) => {
      retries.set(id, [...(retries.get(id) ?? []), retryInMs]);
    });
    try {
      // The outage: a's attempts fail with a growing back-off; c is first asked for late in it.
      await assert.rejects(manager.fetch(a), { code: 'ERR_CERT_UNAVAILABLE' });
      for (let i = 1; i < 6; i++) {
        advance(retries.get(a)!.at(-1)!);
        await until(`failure ${i + 1} of a`, () => retries.get(a)!.length === i + 1);
      }
      assert.deepEqual(retries.get(a), [1000, 2000, 4000, 8000, 16_000, 32_000]);
      await assert.rejects(manager.fetch(c), { code: 'ERR_CERT_UNAVAILABLE' });
      assert.deepEqual(retries.get(c), [1000]);
      advance(1000);
      await until('failure 2 of c', () => retries.get(c)!.length === 2);
      assert.deepEqual(retries.get(c), [1000, 2000]);

      // The CA is back. A new identity is asked for: served at once, with no time passing.
      flaky.failing = false;
      const certB = await manager.fetch(b);
      assert.equal(manager.current(b), certB);
      // Its answer shows the CA is reachable: a (due in 32 s) and c (due in 2 s) are retried now;
      // only timers due at this very instant run. A connection asking for them meanwhile waits for
      // that retry instead of getting the outage's error.
      advance(0);
      const [certA, certC] = await Promise.all([manager.fetch(a), manager.fetch(c)]);
      assert.equal(manager.current(a), certA);
      assert.equal(manager.current(c), certC);
      assert.equal(manager.state(a)?.state, 'Available');
      assert.equal(manager.state(c)?.state, 'Available');
      assert.deepEqual(retries.get(a)?.length, 6, 'no further failure for a');
    } finally {
      manager.close();
      mock.timers.reset();
    }
  });

  it('refuses a CA answer for another identity or without a root', async () => {
    const wrongIdentity: CertificateAuthority = {
      sign: async () => ca.sign((await createWorkloadCsr(b)).csrPem, { ttlSeconds: 60, identity: b }),
    };
    const noRoot: CertificateAuthority = {
      sign: async (csr, options) => ({ ...(await ca.sign(csr, options)), rootPem: '' }),
    };
    for (const [bad, code] of [
      [wrongIdentity, 'ERR_IDENTITY_MISMATCH'],
      [noRoot, 'ERR_CA_RESPONSE'],
    ] as const) {
      const manager = new CertificateManager({ ca: bad, initialBackoffMs: 60_000 });
      try {
        await assert.rejects(manager.fetch(a), { code: 'ERR_CERT_UNAVAILABLE' });
        const state = manager.state(a);
        assert.ok(state?.state === 'Unavailable' && state.code === code, inspect(state));
      } finally {
        manager.close();
      }
    }
  });

  it('never shows the private key in JSON or inspect output', async () => {
    const manager = new CertificateManager({ ca, ttlSeconds: 600 });
    try {
      const cert = await manager.fetch(a);
      const key = cert.privateKeyPem();
      assert.match(key, /BEGIN PRIVATE KEY/);
      const body = key.split('\n')[1]!;
      const outputs = [
        JSON.stringify(cert),
        JSON.stringify(manager),
        JSON.stringify(manager.state(a)),
        inspect(cert, { depth: Infinity, showHidden: true }),
        inspect(manager, { depth: Infinity, showHidden: true }),
        inspect({ nested: [cert] }, { depth: Infinity }),
        String(cert),
        ...logLines,
      ];
      assert.ok(
        logLines.some((line) => line.includes(cert.serialNumber)),
        'issuance was logged',
      );
      for (const out of outputs) {
        assert.ok(!out.includes('PRIVATE KEY'), out);
        assert.ok(!out.includes(body), out);
      }
      assert.ok(
        JSON.stringify(manager).includes(cert.serialNumber),
        'the dump does describe the certificate',
      );
    } finally {
      manager.close();
    }
  });

  it('forget stops refreshing an identity and rejects its pending fetches', async () => {
    const counting = new SwitchableCa(ca);
    const manager = new CertificateManager({ ca: counting, ttlSeconds: 2 });
    try {
      await manager.fetch(a);
      const firstB = await manager.fetch(b);
      manager.forget(a);
      // a's refresh may already have started (LocalCa floors notBefore to the second, so a 2 s
      // certificate can be due for refresh at once); none may start after forget.
      const requestsOfA = () => counting.identities.filter((i) => i === a).length;
      const atForget = requestsOfA();
      assert.equal(manager.state(a), undefined);
      assert.deepEqual(manager.identities(), [b]);
      const rotatedA: unknown[] = [];
      manager.on('rotated', (id) => {
        if (id === a) rotatedA.push(id);
      });
      // b was issued after a, so a's refresh would have come first.
      const [, previous] = await nextRotation(manager, b);
      assert.equal(previous, firstB);
      assert.deepEqual(rotatedA, []);
      assert.equal(requestsOfA(), atForget, 'no CA request for a after forget');
      assert.ok(counting.identities.filter((i) => i === b).length >= 2, 'b was refreshed');

      const pending = manager.fetch(parseSpiffeId('spiffe://cluster.local/ns/ns1/sa/c'));
      manager.forget(parseSpiffeId('spiffe://cluster.local/ns/ns1/sa/c'));
      await assert.rejects(pending, { code: 'ERR_CERT_FORGOTTEN' });
    } finally {
      manager.close();
    }
  });

  it('close rejects pending and later fetches', async () => {
    const manager = new CertificateManager({ ca });
    const pending = manager.fetch(a);
    manager.close();
    await assert.rejects(pending, { code: 'ERR_CLOSED' });
    await assert.rejects(manager.fetch(a), { code: 'ERR_CLOSED' });
    assert.deepEqual(manager.identities(), []);
  });

  it('rejects nonsensical options with a code', () => {
    assert.throws(() => new CertificateManager({ ca, ttlSeconds: 0 }), { code: 'ERR_INVALID_OPTION' });
    assert.throws(() => new CertificateManager({ ca, initialBackoffMs: -1 }), { code: 'ERR_INVALID_OPTION' });
  });
});
