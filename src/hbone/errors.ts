/**
 * The codes the HBONE transport raises on purpose, one union so that a caller matching on them (the
 * proxy's response flags, tests) is checked by the compiler. Errors of the socket underneath keep their
 * errno name (ECONNREFUSED, ...) and stay plain AmbitErrors.
 */
import { AmbitError, type CodedError, codedError } from '../errors.js';

export type HboneErrorCode =
  | 'ERR_NO_EXPECTED_IDENTITY' // TLS: a client dialled with no identity to expect
  | 'ERR_IDENTITY_MISMATCH' // TLS: the server is not one of the expected identities
  | 'ERR_NO_PEER_CERTIFICATE'
  | 'ERR_PEER_UNTRUSTED' // TLS: the peer's certificate does not chain to the trust bundle
  | 'ERR_NO_PEER_IDENTITY' // TLS: the peer's certificate has no SPIFFE URI SAN
  | 'ERR_TRUST_DOMAIN'
  | 'ERR_ALPN'
  | 'ERR_TLS_HANDSHAKE'
  | 'ERR_TLS_HANDSHAKE_TIMEOUT'
  | 'ERR_TLS_HANDSHAKE_LIMIT' // too many handshakes in progress: the oldest is cut
  | 'ERR_H2_HANDSHAKE' // HTTP/2: no connection preface / SETTINGS exchange
  | 'ERR_HBONE_AUTHORITY' // CONNECT: a bad :authority
  | 'ERR_HBONE_STATUS' // CONNECT: answered with a status other than 200
  | 'ERR_HBONE_STREAM'
  | 'ERR_HBONE_REFUSED' // the server refused the stream unprocessed (REFUSED_STREAM, or beyond its GOAWAY): safe to retry
  | 'ERR_HBONE_STREAM_RESET'
  | 'ERR_HBONE_KEEPALIVE' // no PING answer within the keepalive timeout
  | 'ERR_HBONE_SERVER_CLOSED'
  | 'ERR_POOL_CLOSED'
  | 'ERR_POOL_EXHAUSTED'
  | 'ETIMEDOUT'; // the TCP connect to a peer's :15008 took longer than the connect timeout

export type HboneError = CodedError<HboneErrorCode>;
export const hboneError = codedError<HboneErrorCode>;

/** A CONNECT answered with a status other than 200. */
export class HboneStatusError extends AmbitError {
  declare readonly code: 'ERR_HBONE_STATUS';

  constructor(
    readonly status: number,
    authority: string,
  ) {
    super(
      'ERR_HBONE_STATUS' satisfies HboneErrorCode,
      `HBONE CONNECT to ${authority} was answered with status ${status}`,
    );
  }
}
