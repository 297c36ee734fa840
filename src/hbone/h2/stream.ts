/**
 * A node:http2 stream as a TunnelStream (RFC 9113 §8.5 for CONNECT). The stream itself takes the
 * tunnel's members rather than being wrapped: a second Duplex around it would pass every chunk
 * through one more buffer.
 */
import http2, { type Http2Stream, type ServerHttp2Stream } from 'node:http2';
import { hboneError } from '../errors.js';
import type { TunnelStream } from '../transport.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

// HTTP/2 error codes by value (RFC 9113 §7), for error messages.
const CODE_NAMES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];

const IS_TUNNEL = Symbol('tunnel stream');

/** Gives a node:http2 stream (client or server) the TunnelStream members; the same stream comes back. */
export function tunnelStream(stream: Http2Stream): TunnelStream {
  if (IS_TUNNEL in stream) return stream as unknown as TunnelStream;
  // END_STREAM arrived. A stream that is destroyed (its connection gone) also ends its readable side,
  // but only a live one ends because of END_STREAM.
  let peerEnded = false;
  // The stream closed before this side's END_STREAM: what the app was still sending is lost.
  let aborted = false;
  let error: string | undefined;
  // Taken now: a destroyed stream lets go of its session.
  const session = stream.session;
  // Errors are reported through `failure`; a stream without a listener would throw them.
  stream.on('error', (err: Error) => {
    error ??= err.message;
  });
  stream.on('aborted', () => {
    aborted = true;
  });
  stream.on('end', () => {
    if (!stream.destroyed) peerEnded = true;
  });

  const broken = (): string | undefined => {
    if (!stream.closed && !stream.destroyed) return undefined;
    const code = stream.rstCode ?? NGHTTP2_NO_ERROR;
    if (code !== NGHTTP2_NO_ERROR && code !== NGHTTP2_CANCEL)
      return `HBONE stream reset (${CODE_NAMES[code] ?? code})`;
    // A connection that closes resets its open streams with CANCEL (or NO_ERROR when destroyed here).
    if ((!peerEnded || aborted) && session?.destroyed)
      return 'HBONE connection closed before the stream ended';
    if (code === NGHTTP2_CANCEL) return 'HBONE stream reset (CANCEL)';
    if (!peerEnded) return 'HBONE stream ended before the peer finished sending';
    if (aborted) return 'HBONE stream ended before this side finished sending';
    return undefined;
  };
  const live = () => !stream.destroyed && !stream.closed && !stream.aborted;
  // node:http2's own respond (server streams), which the tunnel's respond(status) replaces.
  const server = stream as Partial<ServerHttp2Stream>;
  const respondHeaders = server.respond?.bind(stream);
  const responded = () => server.headersSent === true;

  Object.defineProperties(stream, {
    [IS_TUNNEL]: { value: true },
    live: { get: live },
    responded: { get: responded },
    failure: { get: () => error ?? broken() },
    respond: {
      value: (status: number) => {
        if (!respondHeaders) throw new TypeError('only a server stream is answered');
        if (!live() || responded()) return;
        respondHeaders({ ':status': status }, { endStream: status !== 200 });
      },
    },
    refuse: {
      value: () => {
        if (!stream.destroyed) stream.close(NGHTTP2_REFUSED_STREAM);
      },
    },
    reset: {
      // RFC 9113 §8.5 asks for CONNECT_ERROR, but node:http2's close(code) first ends the stream
      // (END_STREAM), which the peer would hand its app as a FIN before the reset; destroying it with
      // an error sends only the RST_STREAM (INTERNAL_ERROR), which every peer, ztunnel included, reads
      // as an error rather than an end.
      value: (reason: string) => {
        if (!stream.destroyed) stream.destroy(hboneError('ERR_HBONE_STREAM_RESET', reason));
      },
    },
  });
  return stream as unknown as TunnelStream;
}
