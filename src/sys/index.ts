export { identityKey, NetnsHandle, type NetnsIdentity } from './netns.js';
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
