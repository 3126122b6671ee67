/**
 * A replica's side of replication as a pure state machine (no sockets, no storage, time passed
 * in): which connection's stream it follows, the epoch each stream announced and the fencing of
 * streams older than the newest epoch known, the full-sync phase, and whether its master link is
 * up. The `ReplicaApplier` and the `REPLICATE` command ask it before they touch the store, and
 * carry out what it answers.
 *
 * Rules:
 * - A `HELLO` in an epoch older than the newest known is refused (`stale`); otherwise its
 *   connection becomes the stream, superseding every earlier one (a full sync it left
 *   unfinished is abandoned).
 * - Every later frame (`LOG`, `PING`, `SNAPSHOT`) of a stream whose epoch is older than the
 *   newest known is refused `stale` (a newer master said HELLO, or REPLICAOF named one); of a
 *   connection that never said HELLO, or one superseded since, `refused`.
 * - `LOG` is refused while a full sync runs; `SNAPSHOT CHUNK`/`END` only on the stream that began
 *   it, `END` only at `BEGIN`'s LSN. The stream's close abandons a full sync it left unfinished.
 * - The link is up while a stream is open and the master was heard from within its ping
 *   interval plus its timeout (both from its HELLO).
 *
 * Connection ids are the server's (unique per server, never 0). Epochs of closed connections
 * are forgotten ({@link Follower.onClosed}), so the map is bounded by the open connections.
 *
 * @module
 */

/** A frame's verdict: go on, refused as stale (older epoch), or refused with a message. */
export type FrameVerdict =
  | { kind: "ok" }
  | { kind: "stale"; streamEpoch: number; knownEpoch: number }
  | { kind: "refused"; message: string };

/** What a master's HELLO says (parsed and checked by the caller). */
export interface HelloFacts {
  epoch: number;
  masterLsn: number;
  pingIntervalMs: number;
  timeoutMs: number;
  /** Where clients reach the master, "" when it did not say. */
  masterAddress: string;
}

/** A full sync being received. */
export interface SyncPhase {
  readonly connectionId: number;
  /** The snapshot's LSN (`BEGIN`'s). */
  readonly lsn: number;
  /** Keys the master announced. */
  readonly expectedPairs: number;
  /** Pairs received so far. */
  pairs: number;
  /** Bytes of pair data received (keys, values and their length fields). */
  bytes: number;
}

/** What the link looks like from the replica. */
export interface LinkFacts {
  status: "up" | "down";
  /** Peer address of the master's stream (its outgoing port), "" before any. */
  masterPeer: string;
  /** Where clients reach the master (from its HELLO), "" when it did not say. */
  masterAdvertised: string;
  /** Milliseconds since the master was last heard from, or -1. */
  lastIoMs: number;
  /** The highest LSN the master is known to have (its HELLO's, its PINGs', what it streamed). */
  masterKnownLsn: number;
  /** Records the master is known to have that this replica has not applied. */
  masterLagRecords: number;
  /** Milliseconds since this replica first knew of a master record it has not applied (0: none). */
  masterLagMs: number;
  /** The epoch of the master's last HELLO (0: none yet). */
  masterEpoch: number;
  /**
   * How old this replica's data may be, in ms: while the link is up, its lag behind the master
   * at the chain's head; while it is down, at least the time since it was last up (the stream's
   * close, or its last contact when it fell silent); Infinity before any master was heard.
   */
  stalenessMs: number;
  /**
   * How many hops from the master at the chain's head: 1 when the stream comes from the master,
   * 2 from a replica of it, ... (cascading; 0 before any stream).
   */
  depth: number;
  /** Where clients reach the master at the chain's head ("" when unknown). */
  originAddress: string;
  /** The newest LSN of the master at the chain's head known here. */
  originKnownLsn: number;
  /** End to end: records of that master not applied here. */
  originLagRecords: number;
  /**
   * End to end, in ms: the upstream's own lag behind the master (as it last reported it, at most
   * a second old) plus this hop's; this hop's alone when the upstream is the master.
   */
  originLagMs: number;
}

/** What a forwarding upstream says about the chain above it (its `REPLICATE PING ... CHAIN`). */
export interface ChainFacts {
  originLsn: number;
  originLagMs: number;
  /** The upstream's own depth (1: a replica of the master). */
  depth: number;
  originAddress: string;
}

/** The replica's state machine; see the module comment. */
export class Follower {
  readonly #nowMs: () => number;
  /** Epoch each open connection's HELLO announced. */
  readonly #streamEpochs = new Map<number, number>();
  #streamId = 0;
  #masterPeer = "";
  #masterAdvertised = "";
  #masterKnownLsn = 0;
  /** When this replica first knew of a master record it had not applied; undefined: none. */
  #behindSinceMs: number | undefined;
  #masterEpoch = 0;
  /** The upstream's depth: 0 while it is the master itself (no CHAIN report). */
  #upstreamDepth = 0;
  #originAddress = "";
  #originKnownLsn = 0;
  /** The upstream's own end-to-end lag, as it last reported it. */
  #upstreamOriginLagMs = 0;
  #linkUpWithinMs = 0;
  #lastContactMs: number | undefined;
  /** When the stream followed last closed (undefined: open, or none yet). */
  #closedAtMs: number | undefined;
  #sync: SyncPhase | undefined;

  constructor(nowMs: () => number) {
    this.#nowMs = nowMs;
  }

  /** The connection whose stream this replica follows (0: none). */
  get streamId(): number {
    return this.#streamId;
  }

  /** The full sync being received, or undefined. */
  get sync(): SyncPhase | undefined {
    return this.#sync;
  }

  /** The epoch connection `connectionId` announced in its HELLO, or undefined. */
  streamEpoch(connectionId: number): number | undefined {
    return this.#streamEpochs.get(connectionId);
  }

  /**
   * A master's HELLO on `connectionId` from `peer`, when `knownEpoch` is the newest this node
   * knows (the caller made `hello.epoch` durable first when it is newer) and this replica holds
   * up to `appliedLsn`. Returns `stale` when the master is older, else the stream is this
   * connection's and the full sync it abandoned (if any) is returned for the caller to discard.
   */
  onHello(
    connectionId: number,
    peer: string,
    hello: HelloFacts,
    knownEpoch: number,
    appliedLsn = 0,
  ): { kind: "stale" } | { kind: "accepted"; previousPeer: string; abandoned?: SyncPhase } {
    if (hello.epoch < knownEpoch) return { kind: "stale" };
    this.#streamEpochs.set(connectionId, hello.epoch);
    const previousPeer = this.#masterPeer;
    const abandoned = this.#sync;
    this.#sync = undefined;
    this.#streamId = connectionId;
    this.#masterPeer = peer;
    this.#masterAdvertised = hello.masterAddress;
    this.#masterKnownLsn = 0;
    this.#behindSinceMs = undefined;
    // Until a CHAIN report says otherwise, the stream comes from the master itself.
    this.#upstreamDepth = 0;
    this.#originAddress = hello.masterAddress;
    this.#originKnownLsn = 0;
    this.#upstreamOriginLagMs = 0;
    this.learnMasterLsn(hello.masterLsn, appliedLsn);
    this.#masterEpoch = hello.epoch;
    this.#linkUpWithinMs = hello.pingIntervalMs + hello.timeoutMs;
    this.#lastContactMs = this.#nowMs();
    this.#closedAtMs = undefined;
    return abandoned === undefined
      ? { kind: "accepted", previousPeer }
      : { kind: "accepted", previousPeer, abandoned };
  }

  /**
   * Whether a frame (`what`: `LOG`, `PING`, `SNAPSHOT`) on `connectionId` may be served when
   * `knownEpoch` is the newest known; an accepted frame counts as contact with the master.
   */
  checkFrame(connectionId: number, what: string, knownEpoch: number): FrameVerdict {
    const stale = this.staleness(connectionId, knownEpoch);
    if (stale !== undefined) return stale;
    if (this.#streamId === 0) {
      return { kind: "refused", message: `REPLICATE ${what} before REPLICATE HELLO` };
    }
    if (connectionId !== this.#streamId) {
      return {
        kind: "refused",
        message: `REPLICATE ${what} on a stream superseded by a newer REPLICATE HELLO; reconnect`,
      };
    }
    this.#lastContactMs = this.#nowMs();
    return { kind: "ok" };
  }

  /**
   * `stale` when connection `connectionId` announced an epoch older than `knownEpoch` (a newer
   * master said HELLO, or REPLICAOF named one, since its stream began), else undefined.
   */
  staleness(
    connectionId: number,
    knownEpoch: number,
  ): Extract<FrameVerdict, { kind: "stale" }> | undefined {
    const streamEpoch = this.#streamEpochs.get(connectionId);
    if (streamEpoch === undefined || streamEpoch >= knownEpoch) return undefined;
    return { kind: "stale", streamEpoch, knownEpoch };
  }

  /**
   * The master has `masterLsn` (a PING says so) while this replica holds up to `appliedLsn`:
   * when the replica has not applied it, it lags from now on (until it catches up).
   */
  learnMasterLsn(masterLsn: number, appliedLsn: number): void {
    if (masterLsn > this.#masterKnownLsn) this.#masterKnownLsn = masterLsn;
    if (this.#upstreamDepth === 0 && masterLsn > this.#originKnownLsn) {
      this.#originKnownLsn = masterLsn;
    }
    if (this.#masterKnownLsn > appliedLsn) this.#behindSinceMs ??= this.#nowMs();
    else this.#behindSinceMs = undefined;
  }

  /** A LOG frame was applied up to `appliedLsn` (the master has it too). */
  onApplied(appliedLsn: number): void {
    if (this.#behindSinceMs !== undefined) this.learnMasterLsn(appliedLsn, appliedLsn);
  }

  /**
   * The upstream is a replica forwarding its master's records (cascading), and reported `chain`
   * (its `REPLICATE PING <lsn> CHAIN ...`); `upstreamLsn` is its own durable LSN.
   */
  onChain(upstreamLsn: number, chain: ChainFacts, appliedLsn: number): void {
    this.#upstreamDepth = Math.max(1, chain.depth);
    if (chain.originAddress !== "") this.#originAddress = chain.originAddress;
    this.#upstreamOriginLagMs = chain.originLagMs;
    if (chain.originLsn > this.#originKnownLsn) this.#originKnownLsn = chain.originLsn;
    this.learnMasterLsn(upstreamLsn, appliedLsn);
  }

  /** Why a LOG frame cannot be applied now, or undefined. */
  logRefusal(): string | undefined {
    return this.#sync === undefined
      ? undefined
      : "REPLICATE LOG during a full sync (expected SNAPSHOT END)";
  }

  /**
   * A full sync begins on `connectionId` at snapshot `lsn` with `expectedPairs` keys; returns a
   * full sync it replaces (unfinished), for the caller to discard.
   */
  beginSync(connectionId: number, lsn: number, expectedPairs: number): SyncPhase | undefined {
    const abandoned = this.#sync;
    this.#sync = { connectionId, lsn, expectedPairs, pairs: 0, bytes: 0 };
    return abandoned;
  }

  /** The full sync `SNAPSHOT CHUNK|END` on `connectionId` belongs to, or why there is none. */
  syncOf(connectionId: number, step: string): SyncPhase | string {
    const sync = this.#sync;
    if (sync === undefined || sync.connectionId !== connectionId) {
      return `REPLICATE SNAPSHOT ${step} without SNAPSHOT BEGIN`;
    }
    return sync;
  }

  /** Why `SNAPSHOT END <lsn>` does not end `sync`, or undefined. */
  endRefusal(sync: SyncPhase, lsn: number): string | undefined {
    return lsn === sync.lsn
      ? undefined
      : `SNAPSHOT END at LSN ${lsn} does not match BEGIN's ${sync.lsn}`;
  }

  /** `sync` was committed by the store: the replica holds the master's state. */
  syncDone(sync: SyncPhase): void {
    if (this.#sync === sync) this.#sync = undefined;
  }

  /** Abandons the full sync in progress (if any) and returns it, for the caller to discard. */
  abandonSync(): SyncPhase | undefined {
    const sync = this.#sync;
    this.#sync = undefined;
    return sync;
  }

  /**
   * Connection `connectionId` closed. When it was the stream, the link is down now, and a full
   * sync it left unfinished is returned for the caller to discard.
   */
  onClosed(connectionId: number): { streamEnded: boolean; abandoned?: SyncPhase } {
    this.#streamEpochs.delete(connectionId);
    if (connectionId !== this.#streamId) return { streamEnded: false };
    this.#streamId = 0;
    this.#closedAtMs = this.#nowMs();
    const abandoned = this.abandonSync();
    return abandoned === undefined ? { streamEnded: true } : { streamEnded: true, abandoned };
  }

  /**
   * The node stops being a replica (promotion): no stream is followed from now on; the epochs
   * of open connections are kept (a master fences the old master's stream by them).
   */
  stopFollowing(): SyncPhase | undefined {
    this.#streamId = 0;
    return this.abandonSync();
  }

  /**
   * The link as of now. The master pings an idle link every health-check interval and gives up
   * on a reply after its timeout (it says both in HELLO): silence beyond their sum is down.
   */
  link(appliedLsn = 0): LinkFacts {
    const now = this.#nowMs();
    const sinceMs = this.#lastContactMs === undefined ? -1 : now - this.#lastContactMs;
    const behind = this.#behindSinceMs !== undefined && this.#masterKnownLsn > appliedLsn;
    const up = this.#streamId !== 0 && sinceMs >= 0 && sinceMs <= this.#linkUpWithinMs;
    const origin = this.#origin(appliedLsn, behind ? now - (this.#behindSinceMs ?? now) : 0);
    return {
      status: up ? "up" : "down",
      masterPeer: this.#masterPeer,
      masterAdvertised: this.#masterAdvertised,
      lastIoMs: sinceMs,
      masterKnownLsn: Math.max(this.#masterKnownLsn, appliedLsn),
      masterLagRecords: Math.max(0, this.#masterKnownLsn - appliedLsn),
      masterLagMs: behind ? now - (this.#behindSinceMs ?? now) : 0,
      masterEpoch: this.#masterEpoch,
      stalenessMs: up ? origin.originLagMs : this.#downStalenessMs(now, origin.originLagMs),
      ...origin,
    };
  }

  /**
   * A down link's staleness: since the link was last known up (the stream's close when the
   * master was heard within the link's bound before it, else the last contact), and at least
   * the lag it had.
   */
  #downStalenessMs(now: number, lagMs: number): number {
    const lastContactMs = this.#lastContactMs;
    if (lastContactMs === undefined) return Infinity;
    const closedAtMs = this.#closedAtMs;
    const upUntilMs = closedAtMs !== undefined && closedAtMs - lastContactMs <= this.#linkUpWithinMs
      ? closedAtMs
      : lastContactMs;
    return Math.max(lagMs, now - upUntilMs);
  }

  #origin(appliedLsn: number, hopLagMs: number) {
    const hopLagRecords = Math.max(0, this.#masterKnownLsn - appliedLsn);
    const originKnownLsn = Math.max(this.#originKnownLsn, this.#masterKnownLsn, appliedLsn);
    return {
      depth: this.#streamId === 0 && this.#masterPeer === "" ? 0 : this.#upstreamDepth + 1,
      originAddress: this.#originAddress,
      originKnownLsn,
      originLagRecords: Math.max(hopLagRecords, originKnownLsn - appliedLsn),
      originLagMs: this.#upstreamDepth === 0 ? hopLagMs : this.#upstreamOriginLagMs + hopLagMs,
    };
  }
}
