/**
 * HTTP/2 conformance of the HBONE server's HTTP/2 layer: h2spec (every test case, strict ones included)
 * against the framer transport's TunnelServer behind TLS with ALPN h2. h2spec cannot present a client
 * certificate, so the TLS in front is server-only; the server and its streams are the ones ztunnel runs.
 * h2spec sends ordinary requests (GET, POST), so the handler answers any request with a small body, as
 * a CONNECT-only server would answer with a status: the framing, flow control, HPACK and error handling
 * under test are the same.
 *
 * One case needs h2spec told the server's frame size: 4.2/3 sends a HEADERS frame of five header fields
 * of --max-header-length bytes, assuming the default 16 KiB SETTINGS_MAX_FRAME_SIZE, but HBONE announces
 * Istio's 1 MiB; it runs on its own with fields large enough to exceed that.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { framerTransport } from '../../../src/hbone/frame/transport.js';
import type { TunnelServer } from '../../../src/hbone/transport.js';
import { LocalCa } from '../../../src/identity/local-ca.js';
import { CertificateManager } from '../../../src/identity/manager.js';
import { parseSpiffeId } from '../../../src/identity/spiffe.js';
import { tempDir } from '../../identity/helpers.js';

const ROOT = fileURLToPath(new URL('../../../..', import.meta.url));
const SERVER_ID = parseSpiffeId('spiffe://cluster.local/ns/default/sa/h2spec-server');
const CLIENT_ID = parseSpiffeId('spiffe://cluster.local/ns/default/sa/h2spec');
// Five fields of this size make a 1.1 MB HEADERS frame, above the 1 MiB frame size HBONE announces.
const OVERSIZED_FIELD = 220_000;

let h2spec: string;
let port: number;
let tlsServer: tls.Server;
let server: TunnelServer;
let cleanup: () => Promise<void>;

before(async () => {
  // Builds h2spec from the Go module proxy on first use (a minute at most), then reuses the cache.
  h2spec = execFileSync(join(ROOT, 'scripts', 'h2spec'), ['--ambit-bin'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 240_000,
  }).trim();
  const dir = await tempDir();
  const certs = new CertificateManager({
    ca: await LocalCa.open(dir.path, { trustDomain: 'cluster.local' }),
  });
  const cert = await certs.fetch(SERVER_ID);
  server = framerTransport.createServer((stream, request) => {
    stream.resume();
    stream.respond(200);
    if (request[':method'] !== 'CONNECT') stream.end('ambit h2spec\n');
  });
  tlsServer = tls.createServer(
    { key: cert.privateKeyPem(), cert: cert.certChainPem.join(''), ALPNProtocols: ['h2'] },
    (socket) => {
      socket.on('error', () => {});
      server.serve(socket, CLIENT_ID);
    },
  );
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  port = (tlsServer.address() as AddressInfo).port;
  cleanup = async () => {
    server.close();
    tlsServer.close();
    certs.close();
    await dir.remove();
  };
});

after(() => cleanup?.());

interface H2specRun {
  passed: number;
  failed: number;
  total: number;
  output: string;
}

function runH2spec(args: string[]): Promise<H2specRun> {
  return new Promise((resolve) => {
    execFile(
      h2spec,
      ['--tls', '--insecure', '--host', '127.0.0.1', '--port', String(port), '--timeout', '5', ...args],
      { encoding: 'utf8', timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (_err, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        const m = /(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed/.exec(output);
        resolve({
          total: Number(m?.[1] ?? 0),
          passed: Number(m?.[2] ?? 0),
          failed: Number(m?.[4] ?? Number.NaN),
          output,
        });
      },
    );
  });
}

/** What to print on failure: h2spec's own list of the failed cases. */
function failures(run: H2specRun): string {
  const at = run.output.indexOf('Failures:');
  return at < 0 ? run.output.slice(-4000) : run.output.slice(at);
}

test('h2spec: every case but 4.2/3 passes against the HBONE server (strict cases included)', async (t) => {
  const run = await runH2spec(['--strict']);
  t.diagnostic(`h2spec --strict: ${run.total} tests, ${run.passed} passed, ${run.failed} failed`);
  // 4.2/3 is the one case that assumes a 16 KiB frame size (tested on its own below).
  const expectedFailures = /4\.2\. Frame Size\s+× 3:/.test(run.output) ? 1 : 0;
  assert.ok(run.total >= 146, `h2spec ran ${run.total} cases:\n${run.output.slice(-2000)}`);
  assert.equal(run.failed, expectedFailures, failures(run));
});

test('h2spec 4.2/3: a HEADERS frame above the announced SETTINGS_MAX_FRAME_SIZE is a connection error', async (t) => {
  const run = await runH2spec(['--max-header-length', String(OVERSIZED_FIELD), 'http2/4.2/3']);
  t.diagnostic(`h2spec http2/4.2/3: ${run.passed}/${run.total} passed`);
  assert.equal(run.total, 1, run.output);
  assert.equal(run.failed, 0, failures(run));
});
