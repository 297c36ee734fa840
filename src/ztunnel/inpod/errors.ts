/**
 * The codes the in-pod state manager raises on purpose while handling ZDS requests; the workload manager
 * matches on them to NACK, keep the connection and retry (or not).
 */
import { type CodedError, codedError } from '../../errors.js';

export type InPodErrorCode =
  | 'ZDS_PROXY_START' // the pod's proxy could not start: NACKed, the pod retried
  | 'ZDS_NETNS_REFUSED' // a netns no pod proxy may live in: NACKed, nothing retried or changed
  | 'ZDS_PROTOCOL'; // the agent broke the protocol

export type InPodError = CodedError<InPodErrorCode>;
export const inPodError = codedError<InPodErrorCode>;
