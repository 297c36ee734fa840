/** A hand-driven HTTP/2 client for the limit tests: writes any frames, records every frame it gets back. */
import type { Socket } from 'node:net';
import { FrameReader, frameHeader, settingsFrame } from '../../../src/hbone/frame/codec.js';
import { encodeHeaders } from '../../../src/hbone/frame/hpack.js';
import { Flag, FrameType, PREFACE } from '../../../src/hbone/frame/protocol.js';
import { connectTcp } from './helpers.js';

export interface SeenFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export class RawPeer {
  readonly frames: SeenFrame[] = [];
  ended = false;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    let data: Buffer[] = [];
    const reader = new FrameReader(
      {
        dataBegin: () => {
          data = [];
        },
        dataChunk: (_id, chunk) => data.push(chunk),
        dataEnd: (streamId, flags) =>
          this.record({ type: FrameType.DATA, flags, streamId, payload: Buffer.concat(data) }),
        frame: (type, flags, streamId, payload) => this.record({ type, flags, streamId, payload }),
      },
      16 * 1024 * 1024,
    );
    socket.on('data', (c: Buffer) => reader.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  /** Connects, sends the preface and (unless told not to) SETTINGS, and ACKs the server's SETTINGS. */
  static async connect(port: number, options: { settings?: boolean; ack?: boolean } = {}): Promise<RawPeer> {
    const peer = new RawPeer(await connectTcp(port));
    if (options.settings !== false) peer.write(PREFACE, settingsFrame({}));
    if (options.ack !== false) {
      await peer.waitFor((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK));
      peer.write(frameHeader(0, FrameType.SETTINGS, Flag.ACK, 0));
    }
    return peer;
  }

  write(...buffers: Buffer[]): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(buffers));
  }

  /** A frame with any header and payload. */
  frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
    return Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);
  }

  headers(streamId: number, headers: Array<[string, string]>, flags: number = Flag.END_HEADERS): Buffer {
    return this.frame(FrameType.HEADERS, flags, streamId, encodeHeaders(headers));
  }

  private record(f: SeenFrame): void {
    this.frames.push(f);
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The first frame matching, waiting for it; rejects when the connection ends first or after 5 s. */
  async waitFor(match: (f: SeenFrame) => boolean, timeoutMs = 5000): Promise<SeenFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(match);
      if (f) return f;
      if (this.ended) throw new Error('connection ended without the frame');
      if (Date.now() > deadline) throw new Error('timed out waiting for a frame');
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  /** The GOAWAY error code the server sent. */
  async goawayCode(): Promise<number> {
    const f = await this.waitFor((x) => x.type === FrameType.GOAWAY);
    return f.payload.readUInt32BE(4);
  }

  async closed(): Promise<void> {
    while (!this.ended) await new Promise((r) => setTimeout(r, 20));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export const CONNECT_LIST: Array<[string, string]> = [
  [':method', 'CONNECT'],
  [':authority', '10.0.0.2:8080'],
];
