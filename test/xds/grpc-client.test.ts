/**
 * The node:http2 gRPC client against a grpc-js server over TLS (the peer it meets in the control plane)
 * and against a raw HTTP/2 server that misbehaves on purpose: every outcome is a status on the call,
 * never a crash, and nothing stays open after close().
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import {
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { issueServingCertificate, type ServingCertificate } from '../../src/controlplane/ca/serving-cert.js';
import { LocalCa } from '../../src/identity/local-ca.js';
import { controlPlaneChannel } from '../../src/xds/channel.js';
import { GrpcChannel, type GrpcError, GrpcStatus } from '../../src/xds/grpc-client.js';
import { eventually } from '../helpers/wait.js';
import { tempDir } from '../identity/helpers.js';

/** The name in the server certificate besides loopback IPs; dialling 127.0.0.1 verifies against it. */
const SERVER_NAME = 'cp.grpc-test.example';

type Json = Record<string, unknown>;
const serialize = (m: Json): Buffer => Buffer.from(JSON.stringify(m));
const deserialize = (b: Buffer): Json => JSON.parse(b.toString('utf8')) as Json;

function method(path: string, streaming: boolean) {
  return {
    path,
    requestStream: streaming,
    responseStream: streaming,
    requestSerialize: serialize,
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: deserialize,
  };
}

const SERVICE = {
  Echo: method('/test.Echo/Echo', false),
  Fail: method('/test.Echo/Fail', false),
  Slow: method('/test.Echo/Slow', false),
  Seen: method('/test.Echo/Seen', false),
  Chat: method('/test.Echo/Chat', true),
};

async function rejectsWith(p: Promise<unknown>, code: number, details?: RegExp): Promise<GrpcError> {
  let caught: GrpcError | undefined;
  await assert.rejects(p, (err: GrpcError) => {
    assert.equal(err.code, code, `code ${err.code}: ${err.message}`);
    if (details) assert.match(err.details, details);
    caught = err;
    return true;
  });
  return caught!;
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** Node's process warnings, from the start: DEP0123 (an IP address as TLS SNI) is printed once per process. */
const warnings: string[] = [];
process.on('warning', (w: Error & { code?: string }) => warnings.push(`${w.code ?? w.name}: ${w.message}`));

describe('gRPC client over node:http2', () => {
  let dir: { path: string; remove(): Promise<void> };
  let cert: ServingCertificate;

  before(async () => {
    dir = await tempDir();
    await LocalCa.open(dir.path, { trustDomain: 'cluster.local' });
    cert = await issueServingCertificate(dir.path, { dns: [SERVER_NAME] });
  });
  after(() => dir.remove());

  describe('against a grpc-js server', () => {
    let server: Server;
    let target: string;
    const slowCancelled: string[] = [];

    before(async () => {
      server = new Server();
      server.addService(SERVICE, {
        Echo: (call: ServerUnaryCall<Json, Json>, done: sendUnaryData<Json>) => done(null, call.request),
        Fail: (_call: ServerUnaryCall<Json, Json>, done: sendUnaryData<Json>) =>
          done({ code: status.PERMISSION_DENIED, details: 'not you: 100% sure, ünïcode' }),
        Slow: (call: ServerUnaryCall<Json, Json>) => {
          call.on('cancelled', () => slowCancelled.push(String(call.request['id'])));
        },
        Seen: (call: ServerUnaryCall<Json, Json>, done: sendUnaryData<Json>) => {
          const md = call.metadata.getMap();
          done(null, { ...md, authority: call.getHost(), timeout: call.getDeadline() !== Infinity });
        },
        Chat: (call: ServerDuplexStream<Json, Json>) => {
          call.on('data', (m: Json) => {
            if (m['bye']) call.end();
            else call.write({ echo: m['n'] });
          });
          call.on('end', () => call.end());
        },
      });
      const creds = ServerCredentials.createSsl(null, [
        { cert_chain: Buffer.from(cert.certPem), private_key: Buffer.from(cert.keyPem) },
      ]);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
      );
      target = `127.0.0.1:${port}`;
    });
    after(() => server.forceShutdown());

    const channel = (servername?: string) =>
      new GrpcChannel({ target, ca: cert.rootPem, ...(servername ? { servername } : {}) });

    it('a unary call answers with the response message', async () => {
      const c = channel();
      try {
        const m = SERVICE.Echo;
        const res = await c.unary(
          m.path,
          serialize,
          deserialize,
          { hello: 'world' },
          {
            deadline: Date.now() + 10_000,
          },
        );
        assert.deepEqual(res, { hello: 'world' });
        // Calls share the one connection, one after another or at once.
        const many = await Promise.all([1, 2, 3].map((n) => c.unary(m.path, serialize, deserialize, { n })));
        assert.deepEqual(many, [{ n: 1 }, { n: 2 }, { n: 3 }]);
      } finally {
        c.close();
      }
    });

    it("a server's error status arrives as the code with the details percent-decoded", async () => {
      const c = channel();
      try {
        const err = await rejectsWith(
          c.unary(SERVICE.Fail.path, serialize, deserialize, {}),
          GrpcStatus.PERMISSION_DENIED,
        );
        assert.equal(err.details, 'not you: 100% sure, ünïcode');
        assert.equal(err.message, '7 PERMISSION_DENIED: not you: 100% sure, ünïcode');
      } finally {
        c.close();
      }
    });

    it('a call past its deadline ends DEADLINE_EXCEEDED and is cancelled at the server', async () => {
      const c = channel();
      try {
        const started = Date.now();
        await rejectsWith(
          c.unary(
            SERVICE.Slow.path,
            serialize,
            deserialize,
            { id: 'slow-1' },
            { deadline: Date.now() + 300 },
          ),
          GrpcStatus.DEADLINE_EXCEEDED,
        );
        assert.ok(Date.now() - started >= 250, 'not before the deadline');
        await eventually('the server saw the call cancelled', () => slowCancelled.includes('slow-1'));
        // The connection is still good for the next call.
        assert.deepEqual(await c.unary(SERVICE.Echo.path, serialize, deserialize, { after: 1 }), {
          after: 1,
        });
      } finally {
        c.close();
      }
    });

    it('a bidi stream carries messages both ways; the server ending it is "end"', async () => {
      const c = channel();
      try {
        const m = SERVICE.Chat;
        const s = c.bidi(m.path, serialize, deserialize);
        const got: Json[] = [];
        const ended = new Promise<void>((resolve, reject) => {
          s.on('end', resolve);
          s.on('error', reject);
        });
        s.on('data', (msg) => {
          got.push(msg);
          // Replying from the data handler, as the xDS client ACKs.
          if (got.length < 3) s.write({ n: got.length + 1 });
          else s.write({ bye: true });
        });
        s.write({ n: 1 });
        await ended;
        assert.deepEqual(got, [{ echo: 1 }, { echo: 2 }, { echo: 3 }]);

        // Half-closing from the client: the server ends too.
        const t = c.bidi(m.path, serialize, deserialize);
        const more: Json[] = [];
        t.on('data', (msg) => more.push(msg));
        const done = new Promise<void>((resolve, reject) => {
          t.on('end', resolve);
          t.on('error', reject);
        });
        t.write({ n: 7 });
        t.end();
        await done;
        assert.deepEqual(more, [{ echo: 7 }]);
      } finally {
        c.close();
      }
    });

    it('a cancelled stream ends CANCELLED', async () => {
      const c = channel();
      try {
        const s = c.bidi(SERVICE.Chat.path, serialize, deserialize);
        const failed = new Promise<GrpcError>((resolve) => s.on('error', resolve));
        s.write({ n: 1 });
        await new Promise((r) => s.once('data', r));
        s.cancel();
        assert.equal((await failed).code, GrpcStatus.CANCELLED);
      } finally {
        c.close();
      }
    });

    it('an unreachable server is UNAVAILABLE, and a later call dials again', async () => {
      const port = await closedPort();
      const c = new GrpcChannel({ target: `127.0.0.1:${port}`, ca: cert.rootPem });
      try {
        await rejectsWith(c.unary(SERVICE.Echo.path, serialize, deserialize, {}), GrpcStatus.UNAVAILABLE);
        await rejectsWith(c.unary(SERVICE.Echo.path, serialize, deserialize, {}), GrpcStatus.UNAVAILABLE);
        const s = c.bidi(SERVICE.Chat.path, serialize, deserialize);
        const err = await new Promise<GrpcError>((resolve) => s.on('error', resolve));
        assert.equal(err.code, GrpcStatus.UNAVAILABLE);
      } finally {
        c.close();
      }
    });

    it('a server certificate not valid for the name is UNAVAILABLE; the servername is what is verified', async () => {
      const wrong = channel('someone-else.example');
      try {
        await rejectsWith(wrong.unary(SERVICE.Echo.path, serialize, deserialize, {}), GrpcStatus.UNAVAILABLE);
      } finally {
        wrong.close();
      }
      const untrusted = new GrpcChannel({ target });
      try {
        await rejectsWith(
          untrusted.unary(SERVICE.Echo.path, serialize, deserialize, {}),
          GrpcStatus.UNAVAILABLE,
        );
      } finally {
        untrusted.close();
      }
      const right = channel(SERVER_NAME);
      try {
        const seen = await right.unary(SERVICE.Seen.path, serialize, deserialize, {});
        assert.equal(seen['authority'], SERVER_NAME, ':authority is the alternative name');
      } finally {
        right.close();
      }
    });

    it('control-plane metadata: the token file is re-read for every call, clusterid and extra headers are sent', async () => {
      const tokenFile = join(dir.path, 'token');
      writeFileSync(tokenFile, 'first-token\n');
      const c = controlPlaneChannel({
        address: `https://${target}`,
        rootPem: cert.rootPem,
        token: tokenFile,
        clusterId: 'Kubernetes',
        headers: { 'X-Extra': 'yes' },
        altHostname: SERVER_NAME,
      });
      try {
        const first = await c.unary(
          SERVICE.Seen.path,
          serialize,
          deserialize,
          {},
          {
            deadline: Date.now() + 10_000,
          },
        );
        assert.equal(first['authorization'], 'Bearer first-token');
        assert.equal(first['clusterid'], 'Kubernetes');
        assert.equal(first['x-extra'], 'yes');
        assert.equal(first['authority'], SERVER_NAME);
        assert.equal(first['timeout'], true, 'grpc-timeout sent');
        writeFileSync(tokenFile, 'rotated-token\n');
        const second = await c.unary(SERVICE.Seen.path, serialize, deserialize, {});
        assert.equal(second['authorization'], 'Bearer rotated-token');
        // An unreadable token file fails the call, not the process.
        const missing = controlPlaneChannel({
          address: target,
          rootPem: cert.rootPem,
          token: join(dir.path, 'no-such-token'),
        });
        await rejectsWith(
          missing.unary(SERVICE.Seen.path, serialize, deserialize, {}),
          GrpcStatus.UNKNOWN,
          /cannot read token file/,
        );
        missing.close();
        // A literal token (no slash) is sent as it is.
        const literal = controlPlaneChannel({ address: target, rootPem: cert.rootPem, token: 'lit' });
        const seen = await literal.unary(SERVICE.Seen.path, serialize, deserialize, {});
        assert.equal(seen['authorization'], 'Bearer lit');
        literal.close();
      } finally {
        c.close();
      }
    });
  });

  describe('against a misbehaving HTTP/2 server', () => {
    let server: http2.Http2SecureServer;
    let target: string;
    const sessions = new Set<http2.ServerHttp2Session>();
    const resets = new Map<string, number>();
    /** The SNI each TLS connection carried (false or null: none). */
    const servernames: (string | false | null)[] = [];

    const GRPC_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };
    const messageHeader = (flag: number, length: number): Buffer => {
      const b = Buffer.alloc(5);
      b[0] = flag;
      b.writeUInt32BE(length, 1);
      return b;
    };

    /** Sends `body` and then, unless `trailers` is null, the given trailers. */
    function answer(
      stream: http2.ServerHttp2Stream,
      body: Buffer[],
      trailers: Record<string, string> | null,
    ) {
      stream.respond(GRPC_HEADERS, { waitForTrailers: trailers !== null });
      if (trailers) stream.on('wantTrailers', () => stream.sendTrailers(trailers));
      for (const b of body) stream.write(b);
      stream.end();
    }

    before(async () => {
      server = http2.createSecureServer({ cert: cert.certPem, key: cert.keyPem });
      server.on('session', (s) => {
        servernames.push((s.socket as TLSSocket).servername);
        sessions.add(s);
        s.on('close', () => sessions.delete(s));
      });
      server.on('stream', (stream, headers) => {
        const path = String(headers[':path']);
        stream.on('error', () => {});
        stream.on('close', () => resets.set(path, stream.rstCode));
        stream.resume();
        const valid = serialize({ ok: true });
        switch (path) {
          case '/trailers-only':
            stream.respond(
              { ...GRPC_HEADERS, 'grpc-status': '16', 'grpc-message': 'who%20are%20you%3F' },
              { endStream: true },
            );
            return;
          case '/http-503':
            stream.respond({ ':status': 503, 'content-type': 'text/plain' });
            stream.end('overloaded');
            return;
          case '/html':
            stream.respond({ ':status': 200, 'content-type': 'text/html' });
            stream.end('<html>not grpc</html>');
            return;
          case '/huge':
            stream.respond(GRPC_HEADERS);
            stream.write(messageHeader(0, 0xffff_ffff));
            stream.write(Buffer.alloc(1024));
            return; // left open: the client must reset it
          case '/compressed':
            stream.respond(GRPC_HEADERS);
            stream.write(Buffer.concat([messageHeader(1, valid.length), valid]));
            return;
          case '/truncated':
            return answer(stream, [messageHeader(0, 100), Buffer.from('abc')], { 'grpc-status': '0' });
          case '/truncated-no-trailers':
            return answer(stream, [messageHeader(0, 100), Buffer.from('abc')], null);
          case '/no-status':
            return answer(stream, [messageHeader(0, valid.length), valid], null);
          case '/garbage':
            return answer(stream, [messageHeader(0, 3), Buffer.from('{{{')], { 'grpc-status': '0' });
          case '/split': {
            // One message cut into 1-byte DATA frames, then a second one in the same frame as the first's end.
            const framed = Buffer.concat([messageHeader(0, valid.length), valid]);
            stream.respond(GRPC_HEADERS, { waitForTrailers: true });
            stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
            let i = 0;
            const next = (): void => {
              if (i < framed.length - 1) {
                stream.write(framed.subarray(i, i + 1));
                i++;
                setImmediate(next);
              } else {
                stream.write(Buffer.concat([framed.subarray(i), framed]));
                stream.end();
              }
            };
            next();
            return;
          }
          case '/bad-status':
            return answer(stream, [], { 'grpc-status': 'nope', 'grpc-message': '%E0%A4%A' });
          case '/refused':
            stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
            return;
          case '/drop-connection':
            stream.respond(GRPC_HEADERS);
            stream.write(messageHeader(0, 10));
            setTimeout(() => stream.session?.destroy(), 20);
            return;
          default:
            stream.respond({ ...GRPC_HEADERS, 'grpc-status': '12' }, { endStream: true });
        }
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      target = `127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    after(async () => {
      for (const s of sessions) s.destroy();
      await new Promise((r) => server.close(r));
    });

    async function outcome(path: string): Promise<GrpcError> {
      const c = new GrpcChannel({ target, ca: cert.rootPem });
      try {
        let caught: GrpcError | undefined;
        await assert.rejects(c.unary(path, serialize, deserialize, { q: 1 }), (err: GrpcError) => {
          caught = err;
          return true;
        });
        return caught!;
      } finally {
        c.close();
      }
    }

    it('an IP target: no SNI in the TLS hello and no DEP0123 warning; the certificate is checked against the IP', async () => {
      servernames.length = 0;
      const err = await outcome('/trailers-only');
      assert.equal(err.code, GrpcStatus.UNAUTHENTICATED, err.message);
      assert.ok(servernames.length === 1 && !servernames[0], `SNI sent: ${servernames}`);
      // Every test so far dialled 127.0.0.1: Node would have printed the warning by now.
      assert.deepEqual(
        warnings.filter((w) => w.startsWith('DEP0123')),
        [],
      );
      // The certificate names 127.0.0.1, not 127.0.0.2: dialled there it is refused, so without SNI
      // the IP is still what is verified.
      const other = http2.createSecureServer({ cert: cert.certPem, key: cert.keyPem });
      await new Promise<void>((r) => other.listen(0, '127.0.0.2', r));
      const c = new GrpcChannel({
        target: `127.0.0.2:${(other.address() as { port: number }).port}`,
        ca: cert.rootPem,
      });
      try {
        await rejectsWith(c.unary('/x', serialize, deserialize, {}), GrpcStatus.UNAVAILABLE, /127\.0\.0\.2/);
      } finally {
        c.close();
        await new Promise((r) => other.close(r));
      }
    });

    const cases: [path: string, code: number, details: RegExp][] = [
      ['/trailers-only', GrpcStatus.UNAUTHENTICATED, /^who are you\?$/],
      ['/http-503', GrpcStatus.UNAVAILABLE, /503/],
      ['/html', GrpcStatus.UNKNOWN, /content-type/],
      ['/huge', GrpcStatus.RESOURCE_EXHAUSTED, /larger than max/],
      ['/compressed', GrpcStatus.INTERNAL, /compressed/],
      ['/truncated', GrpcStatus.INTERNAL, /inside a message/],
      ['/truncated-no-trailers', GrpcStatus.INTERNAL, /inside a message/],
      ['/no-status', GrpcStatus.UNKNOWN, /No status/],
      ['/garbage', GrpcStatus.INTERNAL, /parse/],
      ['/bad-status', GrpcStatus.UNKNOWN, /%E0%A4%A/],
      ['/refused', GrpcStatus.UNAVAILABLE, /./],
      ['/drop-connection', GrpcStatus.UNAVAILABLE, /./],
      ['/unknown-method', GrpcStatus.UNIMPLEMENTED, /./],
    ];
    for (const [path, code, details] of cases) {
      it(`${path}: ${Object.entries(GrpcStatus).find(([, v]) => v === code)?.[0]}`, async () => {
        const err = await outcome(path);
        assert.equal(err.code, code, err.message);
        assert.match(err.details, details);
      });
    }

    it('an oversized or compressed message resets the stream (RST_STREAM CANCEL)', async () => {
      await eventually('the server saw both resets', () => resets.has('/huge') && resets.has('/compressed'));
      assert.equal(resets.get('/huge'), http2.constants.NGHTTP2_CANCEL);
      assert.equal(resets.get('/compressed'), http2.constants.NGHTTP2_CANCEL);
    });

    it('messages split across DATA frames, or sharing one, are reassembled', async () => {
      const c = new GrpcChannel({ target, ca: cert.rootPem });
      try {
        const s = c.bidi('/split', serialize, deserialize);
        const got: Json[] = [];
        s.on('data', (m) => got.push(m));
        await new Promise<void>((resolve, reject) => {
          s.on('end', resolve);
          s.on('error', reject);
          s.end();
        });
        assert.deepEqual(got, [{ ok: true }, { ok: true }]);
      } finally {
        c.close();
      }
    });

    it('after close() no connection is left open at the server', async () => {
      await eventually('every session closed', () => sessions.size === 0);
      const c = new GrpcChannel({ target, ca: cert.rootPem });
      await assert.rejects(c.unary('/trailers-only', serialize, deserialize, {}));
      assert.equal(sessions.size, 1);
      c.close();
      await eventually('the session closed', () => sessions.size === 0);
      await rejectsWith(
        c.unary('/trailers-only', serialize, deserialize, {}),
        GrpcStatus.UNAVAILABLE,
        /shut down/,
      );
      assert.equal(sessions.size, 0, 'a closed channel does not dial');
    });
  });
});
