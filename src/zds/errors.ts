/**
 * ZDS failures the agent reports to its callers; `retryable` says whether trying again later can help.
 * Decoding raises ZDS_MALFORMED without a retryable flag.
 */
import { codedError, RetryableError } from '../errors.js';

export type ZdsErrorCode =
  /** No node proxy is connected to the agent's socket. */
  | 'ZDS_NO_CONNECTION'
  /** The proxy answered with a NACK (for example: its listeners could not be opened in the pod). */
  | 'ZDS_NACK'
  /** The proxy did not acknowledge within the deadline; the connection is dropped. */
  | 'ZDS_ACK_TIMEOUT'
  /** The connection went away before the proxy acknowledged. */
  | 'ZDS_CONNECTION_CLOSED'
  /** The pod's network namespace could not be opened for sending. */
  | 'ZDS_NETNS'
  /** Bytes that are not the ZDS message or datagram they should be. */
  | 'ZDS_MALFORMED';

/** ambit's one retryable error class, with ZDS's codes. */
export const ZdsError = RetryableError<ZdsErrorCode>;
export type ZdsError = RetryableError<ZdsErrorCode>;

/** A ZDS code without a retryable flag (decode failures). */
export const zdsError = codedError<ZdsErrorCode>;
