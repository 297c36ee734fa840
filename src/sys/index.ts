export { FdBudget, type FdBudgetOptions, openFileLimit } from './fd-budget.js';
export {
  INIT_NETNS_INODE,
  identityKey,
  NetnsHandle,
  type NetnsIdentity,
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
  unmapIPv4,
} from './socket.js';
