/**
 * The codes the framer raises on purpose. They use the names of the HBONE transport's codes where the
 * meaning is the same, so the proxy can treat both stacks alike.
 */
import { type CodedError, codedError } from '../../errors.js';
import { type ErrorCodeName, errorName } from './protocol.js';

export type FramerErrorCode =
  | 'ERR_H2_HANDSHAKE' // no connection preface / SETTINGS exchange in time
  | 'ERR_H2_CONNECTION' // the connection failed with an HTTP/2 connection error (ours or the peer's)
  | 'ERR_H2_CLOSED' // the connection is closed or going away: no new streams
  | 'ERR_H2_STREAM_LIMIT' // the peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached
  | 'ERR_HBONE_REFUSED' // refused unprocessed (REFUSED_STREAM, or beyond the peer's GOAWAY): safe to retry
  | 'ERR_HBONE_STREAM_RESET' // the peer reset the stream
  | 'ERR_HBONE_KEEPALIVE'; // no PING answer within the keepalive timeout

export type FramerError = CodedError<FramerErrorCode> & { h2Code?: ErrorCodeName };

export function framerError(code: FramerErrorCode, message: string, h2Code?: number): FramerError {
  const err: FramerError = codedError(code, message);
  if (h2Code !== undefined) err.h2Code = errorName(h2Code);
  return err;
}
