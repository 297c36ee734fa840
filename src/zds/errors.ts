/** ZDS failures the agent reports to its callers; `retryable` says whether trying again later can help. */
import { AmbitError } from '../errors.js';

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
  | 'ZDS_NETNS';

export class ZdsError extends AmbitError {
  readonly retryable: boolean;

  constructor(code: ZdsErrorCode, message: string, options: { retryable: boolean; cause?: unknown }) {
    super(code, message, { cause: options.cause });
    this.name = 'ZdsError';
    this.retryable = options.retryable;
  }
}
