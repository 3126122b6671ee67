/**
 * The bounds of a `KVClient`: the client library takes no flags, so these are its defaults, and
 * each has a `KVClientOptions` field of the same name (except the few marked fixed). They live
 * next to the client, not in the server's settings table (`src/config.ts`), so importing the
 * client by URL does not pull in the server's settings.
 *
 * @module
 */

const MIB = 1024 * 1024;

/**
 * Default bounds of a `KVClient`.
 *
 * @example
 * ```ts
 * import { CLIENT_DEFAULTS } from "./defaults.ts";
 * console.log(CLIENT_DEFAULTS.retryTimeoutMs); // 30000
 * ```
 */
export const CLIENT_DEFAULTS = {
  /** Most time to wait for connecting and for each reply. */
  timeoutMs: 10_000,
  /** Calls sent and not yet answered; a call past it is refused at once, never queued. */
  maxPendingCalls: 100_000,
  /** Largest single value (bulk string) accepted in a reply. */
  maxReplyBulkBytes: 1024 * MIB,
  /** Most elements of one reply array (a READRANGE of n pairs has 2n). Fixed. */
  maxReplyElements: 20_000_000,

  // --- with `nodes` (a cluster) ---
  /** How often every known node is asked for its view of the topology. */
  topologyRefreshMs: 5_000,
  /** Longest wait for one node's topology answer (connecting included). */
  topologyTimeoutMs: 2_000,
  /** Largest topology answer accepted from one node (a bigger one marks the node bad). Fixed. */
  maxTopologyReplyBytes: 1 * MIB,
  /** Most nodes the client tracks (seeds and discovered ones together). */
  maxNodes: 64,
  /** Most retries of one call (after a failover, a lost connection, a lagging replica). */
  maxRetries: 30,
  /** Most time one call spends retrying before it fails. */
  retryTimeoutMs: 30_000,
  /** Wait before the first retry; it doubles per retry (with jitter), up to maxRetryBackoffMs. */
  retryBackoffMs: 50,
  /** Longest wait between two retries. */
  maxRetryBackoffMs: 1_000,
  /**
   * `nearest` and the replica choices pick among the nodes whose round trip is within this many
   * ms of the fastest eligible one (MongoDB's `localThresholdMS`), spreading load among them.
   */
  localThresholdMs: 15,
  /**
   * A node that said it is the master and then refused a write (or failed it) is not believed
   * for this long when another node claims the role. Fixed.
   */
  suspectMs: 30_000,
} as const;
