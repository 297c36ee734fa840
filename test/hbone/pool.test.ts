/**
 * The HBONE pool against fake TunnelConnections (no sockets): which connection a caller gets, when the
 * pool dials, and when it lets a connection go.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorCode } from '../../src/errors.js';
import { SocketEarlyData } from '../../src/hbone/early-data.js';
import { hboneError } from '../../src/hbone/errors.js';
import { HbonePool, type PoolKey, REFUSED_STREAM_ATTEMPTS } from '../../src/hbone/pool.js';
import type {
  TunnelConnection,
  TunnelOpening,
  TunnelRequestHeaders,
  TunnelStream,
} from '../../src/hbone/transport.js';
import type { SpiffeId } from '../../src/identity/spiffe.js';

const SOURCE = 'spiffe://cluster.local/ns/a/sa/a' as SpiffeId;
const PEER = 'spiffe://cluster.local/ns/b/sa/b' as SpiffeId;
const KEY: PoolKey = { scope: 'pod-a', source: SOURCE, expected: [PEER], host: '10.0.0.2', port: 15008 };
const CONNECT: TunnelRequestHeaders = { ':method': 'CONNECT', ':authority': '10.0.0.2:8080' };

/** A stream that records what is written to it (readable from its other end). */
class FakeStream extends PassThrough {
  constructor() {
    // Gone only when reset or closed by its connection, as a tunnel stream is, not once both ends ended.
    super({ autoDestroy: false });
  }
  readonly responded = false;
  readonly failure = undefined;
  get live(): boolean {
    return !this.destroyed;
  }
  respond(): void {}
  refuse(): void {}
  reset(): void {
    this.destroy();
  }
  /** Everything written so far, as text. */
  text(): string {
    // read() with no size takes all that is buffered.
    const chunk = this.read() as Buffer | null;
    if (chunk) this.written += chunk.toString();
    return this.written;
  }
  written = '';
}

/** A connection that keeps count of its slots; each stream it opens is answered as `answer` says. */
class FakeConnection extends EventEmitter implements TunnelConnection {
  readonly peer = PEER;
  activeStreams = 0;
  goneAway = false;
  drained = false;
  closed = false;
  answer: (stream: FakeStream) => Promise<void> = async () => {};
  readonly streams: FakeStream[] = [];

  constructor(readonly maxStreams = 100) {
    super();
  }

  get ready(): boolean {
    return !this.goneAway && !this.drained && !this.closed;
  }

  tryReserve(): boolean {
    if (!this.ready || this.activeStreams >= this.maxStreams) return false;
    this.activeStreams++;
    return true;
  }

  /** A stream on one of the slots ended. */
  release(): void {
    this.activeStreams--;
    if (this.activeStreams === 0) this.emit('idle');
  }

  open(_headers: TunnelRequestHeaders): TunnelOpening {
    const stream = new FakeStream();
    this.streams.push(stream);
    const answered = this.answer(stream).catch((err: unknown) => {
      // A refused or failed stream is gone, and its slot with it.
      stream.destroy();
      this.release();
      throw err;
    });
    return { stream: stream as unknown as TunnelStream, answered };
  }

  goaway(): void {
    this.goneAway = true;
    this.emit('goaway');
  }

  drain(): void {
    this.drained = true;
  }

  close(): void {
    this.closed = true;
    this.emit('close');
  }
}

/** A promise that stays pending until `release` is called. */
function gated(): { gate: Promise<void>; release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  return { gate, release };
}

/** A dialer handing out fake connections, counting its dials. */
function dialer(make: () => FakeConnection = () => new FakeConnection()) {
  const made: FakeConnection[] = [];
  return {
    made,
    dial: async () => {
      const c = make();
      made.push(c);
      return c;
    },
  };
}

/** A pool with one connection checked out for KEY. */
async function poolWithOne(options: { idleTimeoutMs?: number } = {}, make?: () => FakeConnection) {
  const pool = new HbonePool(options);
  const d = dialer(make);
  const conn = (await pool.checkout(KEY, d.dial)) as FakeConnection;
  return { pool, d, conn };
}

describe('HBONE pool', () => {
  test('reuses one connection per key; another key (another pod) gets its own', async () => {
    const pool = new HbonePool();
    const d = dialer();
    const a = await pool.checkout(KEY, d.dial);
    const b = await pool.checkout(KEY, d.dial);
    assert.equal(a, b);
    assert.equal(a.activeStreams, 2);
    const other = await pool.checkout({ ...KEY, scope: 'pod-c' }, d.dial);
    assert.notEqual(other, a);
    assert.deepEqual(pool.stats(), { connections: 2, dials: 2 });
    // The order of the expected identities does not make another key.
    const two = { ...KEY, expected: [PEER, SOURCE] };
    assert.equal(
      await pool.checkout(two, d.dial),
      await pool.checkout({ ...two, expected: [SOURCE, PEER] }, d.dial),
    );
    pool.close();
  });

  test('a full connection makes the pool dial another; a freed slot is used again', async () => {
    const { pool, d, conn: first } = await poolWithOne({}, () => new FakeConnection(2));
    assert.equal(await pool.checkout(KEY, d.dial), first);
    const second = await pool.checkout(KEY, d.dial);
    assert.notEqual(second, first);
    assert.equal(d.made.length, 2);
    first.release();
    assert.equal(await pool.checkout(KEY, d.dial), first);
    assert.equal(d.made.length, 2);
    pool.close();
  });

  test('GOAWAY takes the connection out of the pool; an unused one is drained at once', async () => {
    const { pool, d, conn: busy } = await poolWithOne();
    busy.goaway();
    assert.equal(busy.drained, false, 'its stream in flight finishes');
    const next = (await pool.checkout(KEY, d.dial)) as FakeConnection;
    assert.notEqual(next, busy);
    next.release();
    next.goaway();
    assert.equal(next.drained, true, 'nothing in flight: drained');
    assert.equal(pool.stats().connections, 0);
    pool.close();
  });

  test('a connection that closes leaves the pool', async () => {
    const { pool, d, conn } = await poolWithOne();
    conn.close();
    assert.equal(pool.stats().connections, 0);
    assert.notEqual(await pool.checkout(KEY, d.dial), conn);
    pool.close();
  });

  test('an unused connection is drained after the idle timeout; one in use is not', async () => {
    const { pool, conn } = await poolWithOne({ idleTimeoutMs: 30 });
    await sleep(80);
    assert.equal(conn.drained, false, 'a stream is open on it');
    assert.equal(pool.stats().connections, 1);
    conn.release(); // 'idle' starts the timer again
    await sleep(80);
    assert.equal(conn.drained, true);
    assert.equal(pool.stats().connections, 0);
    pool.close();
  });

  test('a checkout before the idle timeout keeps the connection', async () => {
    const { pool, d, conn } = await poolWithOne({ idleTimeoutMs: 50 });
    conn.release();
    await sleep(10);
    assert.equal(await pool.checkout(KEY, d.dial), conn);
    await sleep(100);
    assert.equal(conn.drained, false);
    pool.close();
  });

  test('callers waiting for the same key share one dial', async () => {
    const pool = new HbonePool();
    const d = dialer();
    const { gate, release } = gated();
    const slow = async () => {
      await gate;
      return d.dial();
    };
    const waiting = [1, 2, 3, 4, 5].map(() => pool.checkout(KEY, slow));
    release();
    const conns = await Promise.all(waiting);
    assert.equal(d.made.length, 1);
    assert.ok(conns.every((c) => c === d.made[0]));
    assert.equal(d.made[0]!.activeStreams, 5);
    pool.close();
  });

  test('a failed dial fails every caller waiting on it, and the next caller dials again', async () => {
    const pool = new HbonePool();
    let dials = 0;
    const { gate, release } = gated();
    const failing = async (): Promise<TunnelConnection> => {
      dials++;
      await gate;
      throw hboneError('ETIMEDOUT', 'HBONE connect to 10.0.0.2:15008 timed out');
    };
    const waiting = [1, 2, 3].map(() => pool.checkout(KEY, failing));
    release();
    for (const w of waiting) await assert.rejects(w, { code: 'ETIMEDOUT' });
    assert.equal(dials, 1);
    assert.equal(pool.stats().connections, 0);
    const d = dialer();
    await pool.checkout(KEY, d.dial);
    assert.equal(d.made.length, 1);
    assert.equal(pool.stats().dials, 2);
    pool.close();
  });

  test('a stream refused unprocessed is opened again on another connection', async () => {
    const pool = new HbonePool();
    const d = dialer();
    const tried: TunnelConnection[] = [];
    const refusing = new FakeConnection();
    refusing.answer = async () => {
      // What a draining peer does: GOAWAY, then REFUSED_STREAM for the stream past its last id.
      refusing.goaway();
      throw hboneError('ERR_HBONE_REFUSED', 'HBONE CONNECT refused by the server before it was processed');
    };
    let first = true;
    const dial = async () => {
      if (first) {
        first = false;
        return refusing;
      }
      return d.dial();
    };
    const stream = await pool.connect(KEY, dial, CONNECT, (c) => tried.push(c));
    assert.ok(stream);
    assert.deepEqual(tried, [refusing, d.made[0]]);
    assert.equal(refusing.activeStreams, 0);
    pool.close();
  });

  test(`refused ${REFUSED_STREAM_ATTEMPTS} times, or failed otherwise, the stream is not opened again`, async () => {
    const pool = new HbonePool();
    let refused = 0;
    const refusingDial = async () => {
      const c = new FakeConnection();
      c.answer = async () => {
        refused++;
        c.goaway();
        throw hboneError('ERR_HBONE_REFUSED', 'refused');
      };
      return c;
    };
    await assert.rejects(pool.connect(KEY, refusingDial, CONNECT), { code: 'ERR_HBONE_REFUSED' });
    assert.equal(refused, REFUSED_STREAM_ATTEMPTS);

    let failed = 0;
    const failingDial = async () => {
      const c = new FakeConnection();
      c.answer = async () => {
        failed++;
        throw hboneError('ERR_HBONE_STREAM', 'HBONE CONNECT failed');
      };
      return c;
    };
    const err = await pool.connect({ ...KEY, scope: 'pod-c' }, failingDial, CONNECT).catch((e) => e);
    assert.equal(errorCode(err), 'ERR_HBONE_STREAM');
    assert.equal(failed, 1);
    pool.close();
  });

  test('early data goes out before the answer; refused, it is replayed first on the next stream, once, in order', async () => {
    const pool = new HbonePool();
    const app = new PassThrough();
    const early = new SocketEarlyData(app as unknown as Socket);
    app.write('GET / '); // read before any stream exists (the pool is still dialling)
    const refused = gated();
    const answer = gated();
    const made: FakeConnection[] = [];
    const dial = async () => {
      const c = new FakeConnection();
      const first = made.length === 0;
      c.answer = async () => {
        if (!first) return answer.gate;
        await refused.gate;
        c.goaway();
        throw hboneError('ERR_HBONE_REFUSED', 'refused');
      };
      made.push(c);
      return c;
    };
    const connecting = pool.connect(KEY, dial, CONNECT, undefined, early);
    await sleep(5);
    app.write('HTTP/1.1\r\n');
    await sleep(5);
    assert.equal(made[0]!.streams[0]!.text(), 'GET / HTTP/1.1\r\n', 'sent with the CONNECT');
    refused.release();
    await sleep(5);
    app.write('\r\n');
    await sleep(5);
    answer.release();
    const stream = (await connecting) as unknown as FakeStream;
    assert.equal(stream, made[1]!.streams[0]);
    assert.equal(stream.text(), 'GET / HTTP/1.1\r\n\r\n', 'replayed first, each byte once, in order');
    app.write('later');
    await sleep(5);
    assert.equal(stream.text(), 'GET / HTTP/1.1\r\n\r\n', "after the answer the socket is the pipe's");
    assert.ok(app.isPaused(), 'left paused for the pipe to resume');
    assert.equal(String(app.read()), 'later');
    pool.close();
  });

  test('early data is bounded: past the bound the app socket is read no more until the answer', async () => {
    const pool = new HbonePool();
    const app = new PassThrough();
    const early = new SocketEarlyData(app as unknown as Socket, 8);
    const answer = gated();
    const d = dialer(() => {
      const c = new FakeConnection();
      c.answer = () => answer.gate;
      return c;
    });
    const connecting = pool.connect(KEY, d.dial, CONNECT, undefined, early);
    app.write('12345');
    app.write('67890');
    app.write('abc');
    await sleep(5);
    const stream = d.made[0]!.streams[0]!;
    assert.equal(stream.text(), '1234567890');
    assert.ok(app.isPaused());
    answer.release();
    await connecting;
    assert.equal(stream.text(), '1234567890');
    assert.equal(String(app.read()), 'abc', 'what was not read stays for the pipe');
    pool.close();
  });

  test("early data: the app's FIN before the answer ends the stream after its bytes; its reset resets it", async () => {
    const pool = new HbonePool();
    const d = dialer(() => {
      const c = new FakeConnection();
      // Answered 200 never; a stream that goes fails the opening.
      c.answer = (stream) =>
        new Promise((_resolve, reject) =>
          stream.once('close', () => reject(hboneError('ERR_HBONE_STREAM', 'HBONE CONNECT failed'))),
        );
      return c;
    });
    const open = (app: PassThrough, key: PoolKey) =>
      pool.connect(key, d.dial, CONNECT, undefined, new SocketEarlyData(app as unknown as Socket));
    const app = new PassThrough();
    const connecting = open(app, KEY);
    app.end('ping');
    await sleep(5);
    const ended = d.made[0]!.streams[0]!;
    assert.equal(ended.text(), 'ping');
    assert.equal(ended.writableEnded, true, 'END_STREAM after the early data');
    assert.equal(ended.destroyed, false);

    const reset = new PassThrough();
    const failing = open(reset, { ...KEY, scope: 'pod-c' });
    reset.write('x');
    await sleep(5);
    reset.destroy();
    await assert.rejects(failing, { code: 'ERR_HBONE_STREAM' });
    assert.equal(d.made[1]!.streams.length, 1, 'not opened again');
    assert.equal(d.made[1]!.streams[0]!.destroyed, true, 'reset');
    ended.destroy();
    await assert.rejects(connecting);
    pool.close();
  });

  test('close drains every connection; a dial that ends after it is closed and refused', async () => {
    const { pool, d, conn } = await poolWithOne();
    const { gate, release } = gated();
    const late = new FakeConnection();
    const pending = pool.checkout({ ...KEY, scope: 'pod-c' }, async () => {
      await gate;
      return late;
    });
    pool.close();
    assert.equal(conn.drained, true);
    release();
    await assert.rejects(pending, { code: 'ERR_POOL_CLOSED' });
    assert.equal(late.closed, true);
    await assert.rejects(pool.checkout(KEY, d.dial), { code: 'ERR_POOL_CLOSED' });
  });
});
