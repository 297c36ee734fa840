/**
 * The codes the control plane raises on purpose; its gRPC refusals also use identity's codes. A refusal
 * that reports a failure from below (identity's codes, errno names) keeps that failure's code: see
 * forwardedCode.
 */
import { type CodedError, codedError, errorCode } from '../errors.js';

export type ControlPlaneErrorCode =
  | 'ERR_CP_LISTEN' // the gRPC server cannot listen, or the address is not host:port
  | 'ERR_KUBECONFIG' // the kubeconfig cannot be loaded
  | 'ERR_CP_OBJECT_REF' // not NAMESPACE/NAME
  | 'ERR_CP_KUBE_CA' // the CA secret or root configmap cannot be read or written
  | 'ERR_TOKEN_REVIEW' // the token review could not be made (the API server is unreachable)
  | 'ERR_UNAUTHENTICATED' // no bearer token, or the token is rejected or not a service account's
  | 'ERR_IMPERSONATION_DENIED' // a caller asks for another identity it may not have
  | 'ERR_POD_LOOKUP' // the pods that decide an impersonation cannot be listed
  | 'ERR_CA_INTERNAL' // signing failed without a code of its own
  | 'ERR_XDS_INTERNAL'; // an xDS stream failed without a code of its own

export type ControlPlaneError = CodedError<ControlPlaneErrorCode>;
export const controlPlaneError = codedError<ControlPlaneErrorCode>;

/** The code of a failure from below that a refusal passes on as it is. */
export type ForwardedCode = string & { readonly forwarded: unique symbol };

/** `err`'s own code, passed on as it is, else `fallback`. */
export function forwardedCode(
  err: unknown,
  fallback: ControlPlaneErrorCode,
): ControlPlaneErrorCode | ForwardedCode {
  return (errorCode(err) as ForwardedCode | undefined) ?? fallback;
}
