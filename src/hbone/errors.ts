/**
 * The codes the HBONE transport raises on purpose, one union so that a caller matching on them (the
 * proxy's response flags, tests) is checked by the compiler. Errors of the socket underneath keep their
 * errno name (ECONNREFUSED, ...) and stay plain AmbitErrors.
 */
import { type CodedError, codedError } from '../errors.js';

export type HboneErrorCode =
  // TLS: identities and the handshake.
  | 'ERR_NO_EXPECTED_IDENTITY'
  | 'ERR_IDENTITY_MISMATCH'
  | 'ERR_NO_PEER_CERTIFICATE'
  | 'ERR_PEER_UNTRUSTED'
  | 'ERR_NO_PEER_IDENTITY'
  | 'ERR_TRUST_DOMAIN'
  | 'ERR_ALPN'
  | 'ERR_TLS_HANDSHAKE'
  | 'ERR_TLS_HANDSHAKE_TIMEOUT'
  | 'ERR_TLS_HANDSHAKE_LIMIT'
  // HTTP/2 and CONNECT.
  | 'ERR_H2_HANDSHAKE'
  | 'ERR_HBONE_AUTHORITY'
  | 'ERR_HBONE_STATUS'
  | 'ERR_HBONE_STREAM'
  | 'ERR_HBONE_STREAM_RESET'
  | 'ERR_HBONE_KEEPALIVE'
  | 'ERR_HBONE_SERVER_CLOSED'
  // The client pool.
  | 'ERR_POOL_CLOSED'
  | 'ERR_POOL_EXHAUSTED'
  /** The TCP connect to a peer's :15008 took longer than the connect timeout. */
  | 'ETIMEDOUT';

export type HboneError = CodedError<HboneErrorCode>;
export const hboneError = codedError<HboneErrorCode>;
