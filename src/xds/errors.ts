/** The codes the xDS wire layer (gRPC channel, protobuf codec) raises on purpose. */
import { type CodedError, codedError } from '../errors.js';

export type XdsErrorCode =
  | 'ERR_CP_ADDRESS' // the control plane address is not [https://]host:port
  | 'ERR_TOKEN_FILE' // the bearer token file cannot be read
  | 'ERR_PROTO_MALFORMED'; // bytes that do not decode as the expected protobuf message

export type XdsError = CodedError<XdsErrorCode>;
export const xdsError = codedError<XdsErrorCode>;
