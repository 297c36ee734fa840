// The proxy's socket code reads peer addresses through sys; their one home is net/ip.ts.
export { unmapIPv4 } from '../net/ip.js';
export { FdBudget, type FdBudgetOptions, openFileLimit } from './fd-budget.js';
export { trimMallocArenas } from './memory.js';
export {
  INIT_NETNS_INODE,
  identityKey,
  NetnsHandle,
  type NetnsIdentity,
  type NetnsRef,
  netnsIdentityAt,
} from './netns.js';
export {
  connectSeqpacket,
  DEFAULT_MAX_MESSAGE,
  SeqpacketServer,
  SeqpacketSocket,
  seqpacketPair,
} from './seqpacket.js';
export {
  type ConnectInNetnsOptions,
  connected,
  connectInNetns,
  type ListenInNetnsOptions,
  listenInNetns,
  originalDst,
  resetSocket,
  type SocketOptions,
  setSocketOptions,
  socketFd,
  socketMark,
  type UdpInNetnsOptions,
  udpSocketInNetns,
} from './socket.js';
