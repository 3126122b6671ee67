/**
 * What a master's link to one replica works with: the storage it ships from
 * ({@link ReplicationSource}), what its replicator gives it ({@link LinkContext}), and the parts
 * of one session that the session's steps share ({@link LinkSession}: the handshake in
 * `link_handshake.ts`, the full sync in `link_full_sync.ts`, the streaming in `replica_link.ts`).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { CompressionSetting } from "./compression.ts";
import type { LinkConnection } from "./link_connection.ts";
import type { LinkFrames } from "./link_frames.ts";
import type { ReplicaNode } from "./replica_node.ts";
import type { ChainFields } from "./stream_protocol.ts";
import type { Wakeup } from "./wakeup.ts";

/** A consistent, pinned view of the master's data at one LSN (storage's `snapshot()`). */
export interface SourceSnapshot {
  lsn: number;
  /** Live keys in the snapshot, when known (for progress). */
  keys?: number;
  /** Key and value bytes in the snapshot, when known (for progress). */
  bytes?: number;
  /** Key, value and expiry time (ms since the epoch, 0 or absent: none). */
  entries: AsyncIterable<readonly [Uint8Array, Uint8Array, number?]>;
  release(): void;
}

/** What the master's storage offers replication (see the storage contract). */
export interface ReplicationSource {
  /** Highest LSN appended (durable or not). */
  readonly lastLsn: number;
  /** This node's epoch, written into its records. */
  readonly epoch?: number;
  /** The log holds every record after this LSN (compaction dropped some before). */
  readonly oldestCompleteLsn?: number;
  onDurable(listener: (records: Uint8Array, firstLsn: number, lastLsn: number) => void): () => void;
  /**
   * Durable encoded records after `lsn`, in chunks of whole records of at most `maxChunkBytes`;
   * throws LogGapError when some were compacted away.
   */
  readLogFrom(lsn: number, maxChunkBytes?: number): AsyncIterable<Uint8Array>;
  snapshot(): SourceSnapshot | Promise<SourceSnapshot>;
}

/** What a link needs from its replicator. */
export interface LinkContext {
  source: ReplicationSource;
  log: Logger;
  nowMs(): number;
  /** The epoch HELLO announces: the master's, or a forwarding replica's newest known. */
  epoch(): number;
  /**
   * A forwarding replica: why it cannot serve its sub-replicas now (undefined: it can). Absent
   * on a master.
   */
  notReady?(): string | undefined;
  /**
   * A forwarding replica: the key prefixes of the data it holds (it is filtered itself), which a
   * sub-replica given no filter of its own gets: it can only forward what it has.
   */
  heldKeyFilter?(): readonly string[];
  /** A forwarding replica: what it tells its sub-replicas about the chain (absent on a master). */
  chain?(): ChainFields;
  /** Where clients reach the master (`host:port`), told to the replica in HELLO. */
  masterAddress?: () => string;
  snapshotChunkBytes: number;
  /**
   * `REPLICATION_COMPRESSION` and `REPLICATION_COMPRESSION_MIN_BYTES`: the codec offered after
   * HELLO, and the smallest frame packed with it (default: off).
   */
  compression?: { setting: CompressionSetting; minBytes: number };
  /** Largest reply accepted from a replica (`MAX_REQUEST_BYTES`: the bound on what a peer sends). */
  maxReplyBytes: number;
  /** The replica acknowledged more records. */
  onAck(node: ReplicaNode): void;
  /** The replica's health changed. */
  onHealthChange(node: ReplicaNode): void;
  /** Opens the connection (default: TCP); e.g. TLS with the replicas' CA. */
  connect?: (host: string, port: number) => Promise<Deno.Conn>;
  /** The replication token, proved with `CHALLENGE`/`PROVE` before `HELLO` when set. */
  authToken?: string;
  /** The replica answered a request with an error (e.g. `STALEEPOCH`: a newer master exists). */
  onRefused?(node: ReplicaNode, code: string, message: string): void;
}

/** One session of a link: its replica's core, its connection, its wake-ups and its frames. */
export interface LinkSession {
  readonly node: ReplicaNode;
  readonly ctx: LinkContext;
  /** This session's connection (a new one per session). */
  readonly wire: LinkConnection;
  /** Wakes the sender: a reply, a failure, new records. */
  readonly wakeup: Wakeup;
  /** Builds the frames of this session (its codec, the replica's key filter). */
  readonly frames: LinkFrames;
}

/**
 * A session ended for a reason of the source's (a forwarding replica waits for its master, or its
 * log was replaced): no failure of the replica's.
 */
export class LinkPaused extends Error {
  override name = "LinkPaused";
}

/** Waits until every request sent on the session's connection has its reply. */
export async function waitAllReplies(session: LinkSession): Promise<void> {
  while (session.node.pendingReplies > 0) {
    session.wire.throwIfFailed();
    await session.wakeup.wait(); // replies are due: the watchdog bounds the wait
  }
}
