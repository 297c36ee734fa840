/**
 * The codes the identity module (certificate manager, CA client, local CA, SPIFFE ids) raises on purpose;
 * the control plane's CA service answers with them too.
 */
import { type CodedError, codedError } from '../errors.js';

export type IdentityErrorCode =
  | 'ERR_SPIFFE_ID' // not a workload SPIFFE id
  | 'ERR_DER' // malformed DER in a certificate or CSR
  | 'ERR_CSR_INVALID' // a CSR that is not PEM, too large, or does not parse or verify
  | 'ERR_CSR_SAN' // a CSR without exactly one workload SPIFFE URI SAN
  | 'ERR_CSR_KEY' // a CSR key that is not ECDSA P-256
  | 'ERR_TRUST_DOMAIN' // an identity outside the CA's trust domain
  | 'ERR_IDENTITY_MISMATCH' // a certificate or CSR for another identity than the one asked for
  | 'ERR_CA_TTL' // a TTL that is not a positive whole number of seconds
  | 'ERR_CA_FILES' // the local CA's root files cannot be read, or only one of them exists
  | 'ERR_CA_TRUST_DOMAIN' // the local CA's stored root belongs to another trust domain
  | 'ERR_CA_REQUEST' // a CA request failed without a code of its own
  | 'ERR_CA_RESPONSE' // the CA's answer lacks a certificate or root, or certifies another key
  | `ERR_CA_${string}` // the CA answered with a gRPC error: ERR_CA_<status name>, e.g. ERR_CA_UNAVAILABLE
  | 'ERR_CERT_FORGOTTEN' // the identity stopped being managed while its certificate was requested
  | 'ERR_CERT_UNAVAILABLE' // no valid certificate for an identity (the cause says why)
  | 'ERR_CERT_EXPIRED' // a state, not raised: the certificate expired and no new one has come
  | 'ERR_INVALID_OPTION'
  | 'ERR_CLOSED'; // the certificate manager is closed

export type IdentityError = CodedError<IdentityErrorCode>;
export const identityError = codedError<IdentityErrorCode>;
