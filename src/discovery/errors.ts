/** The codes workload discovery (the xDS client, the local configuration file) raises on purpose. */
import { type CodedError, codedError } from '../errors.js';

export type DiscoveryErrorCode =
  | 'ERR_XDS_RESOURCE' // a resource the client cannot take: the response is NACKed
  | 'ERR_LOCAL_XDS'; // the local configuration file is invalid

export type DiscoveryError = CodedError<DiscoveryErrorCode>;
export const discoveryError = codedError<DiscoveryErrorCode>;
