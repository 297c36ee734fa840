/**
 * The V8 flags the ztunnel process starts with. Heap sizing is fixed when the isolate is created,
 * so these are Node command-line flags (NODE_OPTIONS does not accept them), given by every launcher:
 * `bin/ambit`'s interpreter line and the lab's process launcher.
 *
 * Why: with V8's default initial old-generation limit (a few MiB above a ~10 MiB live heap), the
 * buffers of the data path (socket reads, TLS records, frames in flight) pushed V8 into a full
 * mark-compact every ~50 ms under bulk traffic: 256 of them in one 2 GiB benchmark transfer, each
 * marking the whole heap, 17-22 % of the ztunnel's CPU in `perf`. With a 64 MiB initial old space
 * the same transfer ran no mark-compact at all (the young-generation scavenges free the buffers);
 * bulk throughput rose 20-35 % and CPU per GiB fell ~25 %, idle RSS unchanged (the limit is
 * a threshold, not a reservation).
 */
/*
 * --expose-gc: after a burst of traffic, runtime/idle-memory.ts runs one full collection before it
 * trims the C heap. The collection frees the buffers' wrappers and with them the buffers' malloc
 * memory; without it trimming recovered 24 and 13 of 37 and 70 MiB on a lab, with it 56 and 21
 * (anonymous memory 82 and 48 MiB after 1 GiB plus 500 connections each way, 26 and 27 MiB once idle).
 */
export const ZTUNNEL_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64', '--expose-gc'];

/** The flags of ZTUNNEL_NODE_FLAGS this process was not started with (its `process.execArgv`). */
export function missingNodeFlags(execArgv: readonly string[]): string[] {
  return ZTUNNEL_NODE_FLAGS.filter((flag) => !execArgv.includes(flag));
}
