/** Maps why an HBONE tunnel could not be opened to Istio's response flag. */
import { errorCode } from '../../errors.js';
import { type HboneErrorCode, HboneStatusError } from '../../hbone/errors.js';
import type { ResponseFlag } from './connection-info.js';

const BY_CODE: Partial<Record<HboneErrorCode, ResponseFlag>> = {
  ERR_IDENTITY_MISMATCH: 'IDENTITY_ERROR',
  ERR_PEER_UNTRUSTED: 'TLS_FAILURE',
  ERR_TLS_HANDSHAKE: 'TLS_FAILURE',
  ERR_ALPN: 'TLS_FAILURE',
  ERR_NO_PEER_CERTIFICATE: 'TLS_FAILURE',
  ERR_H2_HANDSHAKE: 'H2_HANDSHAKE_FAILURE',
};

export function responseFlagFor(err: unknown): ResponseFlag {
  if (err instanceof HboneStatusError) return err.status === 401 ? 'DENY' : 'CONNECT';
  return BY_CODE[errorCode(err) as HboneErrorCode] ?? 'CONNECT';
}
