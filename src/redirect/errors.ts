/** The codes the redirection rules raise on purpose (`ambit redirect` prints them as `[CODE]`). */
import { type CodedError, codedError } from '../errors.js';

export type RedirectErrorCode =
  | 'ERR_REDIRECT_BAD_OPTION' // an unknown backend, inbound mode, iptables variant or option
  | 'ERR_REDIRECT_BAD_IP' // a host probe address that is not an IP address
  | 'ERR_REDIRECT_NETNS_NOT_FOUND'
  | 'ERR_REDIRECT_TOOL_MISSING' // iptables/nft/ip is not on PATH or cannot run
  | 'ERR_REDIRECT_COMMAND_FAILED'
  | 'ERR_REDIRECT_DRIFT'; // the netns already has different rules than the ones expected

export type RedirectError = CodedError<RedirectErrorCode>;
export const redirectError = codedError<RedirectErrorCode>;
