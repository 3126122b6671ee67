/**
 * The replica side of replication: the `REPLICATE` command of a node started with `--replica`.
 * It answers the master's stream (HELLO, LOG, PING, SNAPSHOT; see `stream_protocol.ts`) and the
 * spec's manual `REPLICATE PUT|BATCHPUT|DELETE`, which are stored as local writes (they never
 * take a master LSN). Only the newest stream is served: a HELLO supersedes every earlier
 * connection, whose frames are then refused, so two master connections can never interleave.
 *
 * @module
 */
import assert from "node:assert/strict";
import { getLog } from "../log.ts";
import { CommandError } from "../server/hooks.ts";
import { Follower, type SyncPhase } from "./follower.ts";
import { SyncProgress } from "./sync_progress.ts";
import { MAX_EPOCH } from "../storage/mod.ts";
import { KeyFilter, KeyFilterError, samePrefixes } from "./key_filter.ts";
import {
  acceptCodec,
  CompressionError,
  type CompressionSetting,
  isCodec,
  unpackBatch,
} from "./compression.ts";
import {
  type ChunkPair,
  decodePairs,
  helloReplyText,
  MAX_LSN,
  parseHelloRequest,
  parseOrThrow,
  parsePingChain,
  parseStreamNumber,
} from "./stream_protocol.ts";

/** What a replica's storage offers replication (see the storage contract). */
export interface ReplicaStore {
  /** Last master LSN held (local writes reuse it). */
  readonly lastLsn: number;
  /** Epoch of the record at `lastLsn` (0 when empty). */
  readonly lastEpoch: number;
  /** CRC-32 of the master's record at `lastLsn`, or 0 when empty or no longer readable. */
  lastRecordCrc(): Promise<number>;
  /**
   * Appends and applies the master's records now (skipping LSNs already held; `records` is not
   * kept) and returns the last LSN held; the reply waits until that LSN is durable here.
   */
  appendReplicated(records: Uint8Array): number;
  /** Local writes of the manual `REPLICATE` commands; resolve when durable. */
  putLocal(key: Uint8Array, value: Uint8Array): Promise<void>;
  batchPutLocal(pairs: [Uint8Array, Uint8Array][]): Promise<void>;
  deleteLocal(key: Uint8Array): Promise<boolean>;
  /**
   * Starts a crash-safe full-sync replacement: pairs are written aside and swapped in atomically
   * by `commit` (the state as of `lsn` with `epoch`); `abort` discards them.
   */
  beginFullSync(lsn: number, epoch: number): Promise<FullSyncWriter> | FullSyncWriter;
}

/** A full sync being received (storage side). */
export interface FullSyncWriter {
  add(pairs: ChunkPair[]): Promise<void> | void;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * A REPLICATE request that cannot be served: a bad request, answered `ERROR: <message>` and
 * logged at most once a minute (kind `bad_replicate`), never as an internal error.
 */
export class ReplicateError extends CommandError {
  override name = "ReplicateError";
  constructor(message: string) {
    super(message, "ERR", "bad_replicate");
  }
}

/**
 * A reply of the applier (the server writes it in the request's framing). With `durableLsn`
 * the reply must not leave before that LSN is durable on this node.
 */
export type ApplierReply =
  | { type: "ok" }
  | { type: "integer"; value: number; durableLsn?: number }
  | { type: "status"; text: string };

/** What `INFO replication` shows on a replica. */
export interface ReplicaInfo {
  role: "replica";
  /** `up` while a master stream is open and heard from recently. */
  masterLinkStatus: "up" | "down";
  masterAddress: string;
  /**
   * Where clients reach the master (`host:port`, from its HELLO), or "" when it did not say
   * (`masterAddress` is the peer address of its stream: its outgoing port).
   */
  masterAdvertisedAddress: string;
  /** Seconds since the master was last heard from, or -1. */
  masterLastIoSecondsAgo: number;
  /** Milliseconds since the master was last heard from, or -1. */
  masterLastIoMs: number;
  /** Highest LSN the master is known to have: its HELLO's, its PINGs', or what it streamed since. */
  masterKnownLsn: number;
  /** Records the master is known to have that this replica has not applied. */
  masterLagRecords: number;
  /** Milliseconds since this replica first knew of a master record it has not applied (0: none). */
  masterLagMs: number;
  /** How old its data may be, in ms (see `LinkFacts.stalenessMs`; Infinity: no master yet). */
  stalenessMs: number;
  lastAppliedLsn: number;
  epoch: number;
  masterEpoch: number;
  fullSyncInProgress: boolean;
  /** LOG frames applied from the master since start. */
  appliedFrames: number;
  fullSyncs: number;
  /** Hops from the master at the chain's head (1: it streams from the master; 0: no stream yet). */
  chainDepth: number;
  /** Where clients reach the master at the chain's head ("" when unknown). */
  originAddress: string;
  /** The newest LSN of that master known here. */
  originKnownLsn: number;
  /** End to end: that master's records not applied here, and for how long, in ms. */
  originLagRecords: number;
  originLagMs: number;
}

/** A full sync being received: its phase (the follower's), the store's writer, its progress. */
interface FullSyncState {
  phase: SyncPhase;
  writer: FullSyncWriter;
  chain: Promise<void>;
  progress: SyncProgress;
}

const decoder = new TextDecoder();
/** Bound of an unpacked frame when the node did not say (MAX_REQUEST_BYTES' default). */
const MAX_UNPACKED_BYTES = 136 * 1024 * 1024;

/** A codec word as the codecs are named (lower case). */
function upperLower(bytes: Uint8Array): string {
  return decoder.decode(bytes.subarray(0, 32)).toLowerCase();
}

/** A whole number field from 0 to `max`, or a {@link ReplicateError} naming it. */
function parseCount(bytes: Uint8Array, what: string, max = MAX_LSN): number {
  return asReplicateError(() => parseStreamNumber(bytes, what, max));
}

/** Runs `parse`, turning a stream format error into a {@link ReplicateError}. */
function asReplicateError<T>(parse: () => T): T {
  return parseOrThrow(parse, (message) => new ReplicateError(message));
}

/**
 * A subcommand word, upper-cased. Every LOG frame passes here: for a short ASCII word a loop is
 * cheaper than a `TextDecoder` call plus `toUpperCase()` (docs/ARCHITECTURE.md, "Measured
 * costs").
 */
export function upper(bytes: Uint8Array): string {
  if (bytes.length > 16) return decoder.decode(bytes).toUpperCase();
  let word = "";
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte >= 0x80) return decoder.decode(bytes).toUpperCase();
    word += String.fromCharCode(byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte);
  }
  return word;
}

/** `-STALEEPOCH <newerEpoch> stale epoch <epoch>: <text>`: the refusal that deposes a master. */
export function staleEpochError(
  newerEpoch: number,
  staleEpoch: number,
  text: string,
): CommandError {
  return new CommandError(`${newerEpoch} stale epoch ${staleEpoch}: ${text}`, "STALEEPOCH");
}

/** The refusal of a frame on a stream a newer master superseded. */
function staleStream(verdict: { streamEpoch: number; knownEpoch: number }): CommandError {
  // A newer master said HELLO (or REPLICAOF named one) since this stream began.
  return staleEpochError(
    verdict.knownEpoch,
    verdict.streamEpoch,
    `this replica follows epoch ${verdict.knownEpoch} now (a newer master was promoted)`,
  );
}

/** What a {@link ReplicaApplier} learns from its node (all optional). */
export interface ApplierOptions {
  /** The newest epoch this node knows (default: the store's last record's). */
  knownEpoch?: () => number;
  /**
   * A master's HELLO announced `epoch`, at least the newest known: remember it durably before
   * this returns (a restart must not forget it).
   */
  learnEpoch?: (epoch: number) => void;
  /**
   * Local writes (the manual `REPLICATE PUT|BATCHPUT|DELETE`) this replica holds that no full
   * sync has replaced yet: a HELLO reply says how many, and the master then sends a full sync.
   */
  localWrites?: () => number;
  /** A full sync was committed: the replica's contents are the master's, local writes gone. */
  fullSyncCommitted?: () => Promise<void>;
  /** `REPLICATION_COMPRESSION`: whether (and which) compressed frames are accepted (default off). */
  compression?: CompressionSetting;
  /** Largest frame once unpacked (`MAX_REQUEST_BYTES`, the bound of an uncompressed frame). */
  maxUnpackedBytes?: number;
  /** The key prefixes of the data this replica holds (selective replication; empty: all keys). */
  keyFilter?: () => readonly string[];
  /**
   * A full sync made this replica hold exactly the keys of `prefixes` (the filter its master
   * gave it with `REPLICATE FILTER`): remember them durably before this returns.
   */
  keyFilterHeld?: (prefixes: readonly string[]) => void;
}

/** Serves `REPLICATE` on a replica: the store's side of what its {@link Follower} decides. */
export class ReplicaApplier {
  readonly #store: ReplicaStore;
  readonly #nowMs: () => number;
  readonly #follower: Follower;
  readonly #options: ApplierOptions;
  readonly #log = getLog("replication");
  #fullSync: FullSyncState | undefined;
  /** A key filter a stream gave that differs from the data's: kept once its full sync commits. */
  #offeredFilter: { connectionId: number; prefixes: string[] } | undefined;
  #appliedFrames = 0;
  #fullSyncs = 0;

  /**
   * `follower`: the node's replica state machine (a new one by default, on `nowMs`); it outlives
   * an applier when the node changes role.
   */
  constructor(
    store: ReplicaStore,
    nowMs: () => number = Date.now,
    options: ApplierOptions = {},
    follower: Follower = new Follower(nowMs),
  ) {
    this.#store = store;
    this.#nowMs = nowMs;
    this.#follower = follower;
    this.#options = options;
  }

  #knownEpoch(): number {
    return this.#options.knownEpoch?.() ?? this.#store.lastEpoch;
  }

  /**
   * Handles `REPLICATE <sub> ...` (`args` start with the subcommand). `connectionId` identifies
   * the connection; `peer` its address. `args` may be views into a reused buffer: everything
   * kept past the synchronous part is copied.
   */
  handle(
    args: Uint8Array[],
    connectionId: number,
    peer: string,
  ): ApplierReply | Promise<ApplierReply> {
    if (args.length === 0) throw new ReplicateError("REPLICATE requires subcommand");
    const sub = upper(args[0]);
    switch (sub) {
      case "PUT":
        if (args.length !== 3) throw new ReplicateError("REPLICATE PUT requires key and value");
        return this.#store.putLocal(args[1].slice(), args[2].slice()).then(() => ({ type: "ok" }));
      case "BATCHPUT": {
        if (args.length < 3 || args.length % 2 === 0) {
          throw new ReplicateError("REPLICATE BATCHPUT requires keys and values");
        }
        const pairs: [Uint8Array, Uint8Array][] = [];
        for (let i = 1; i < args.length; i += 2) pairs.push([args[i].slice(), args[i + 1].slice()]);
        return this.#store.batchPutLocal(pairs).then(() => ({ type: "ok" }));
      }
      case "DELETE":
        if (args.length !== 2) throw new ReplicateError("REPLICATE DELETE requires key");
        return this.#store.deleteLocal(args[1].slice()).then(() => ({ type: "ok" }));
      case "HELLO":
        return this.#hello(args, connectionId, peer);
      case "LOG":
        this.#checkFrame(connectionId, "LOG");
        if (args.length !== 2) throw new ReplicateError("REPLICATE LOG requires records");
        return this.#applyLog(args[1]);
      case "LOGZ":
        this.#checkFrame(connectionId, "LOGZ");
        if (args.length !== 4) {
          throw new ReplicateError("REPLICATE LOGZ requires codec, rawBytes and records");
        }
        return this.#applyLog(this.#unpack(args[1], args[2], args[3], peer));
      case "FILTER":
        this.#checkFrame(connectionId, "FILTER");
        return this.#filter(args, connectionId);
      case "COMPRESS":
        this.#checkFrame(connectionId, "COMPRESS");
        return {
          type: "status",
          text: acceptCodec(this.#options.compression ?? "off", args.slice(1).map(upperLower)),
        };
      case "PING":
        this.#checkFrame(connectionId, "PING");
        // The master's durable LSN (an older master sends none): how far behind this replica is.
        if (args.length > 1) {
          const masterLsn = parseCount(args[1], "master LSN");
          const chain = asReplicateError(() => parsePingChain(args));
          if (chain === undefined) this.#follower.learnMasterLsn(masterLsn, this.#store.lastLsn);
          else this.#follower.onChain(masterLsn, chain, this.#store.lastLsn);
        }
        return { type: "integer", value: this.#store.lastLsn };
      case "SNAPSHOT":
        this.#checkFrame(connectionId, "SNAPSHOT");
        return this.#snapshot(args, connectionId, peer);
      default:
        this.#checkStale(connectionId);
        throw new ReplicateError(
          `unknown REPLICATE subcommand "${sub}" (PUT, BATCHPUT, DELETE, or the master's ` +
            `HELLO, COMPRESS, FILTER, LOG, LOGZ, PING, SNAPSHOT)`,
        );
    }
  }

  /**
   * `REPLICATE HELLO`: every field checked first (a bad one changes nothing), then the epoch
   * fenced (an older master is refused with STALEEPOCH), then a newer epoch made durable before
   * the master hears OK, then the connection becomes the stream.
   */
  #hello(args: Uint8Array[], connectionId: number, peer: string): Promise<ApplierReply> {
    const hello = asReplicateError(() => parseHelloRequest(args));
    const known = this.#knownEpoch();
    if (hello.epoch < known) {
      this.#log.warn(
        "refused a master stream from {master} in epoch {epoch}: this replica follows " +
          "epoch {known}",
        { event: "stale_epoch", master: peer, epoch: hello.epoch, known },
      );
      throw staleEpochError(
        known,
        hello.epoch,
        `this replica follows epoch ${known} (a newer master was promoted)`,
      );
    }
    this.#options.learnEpoch?.(hello.epoch);
    const verdict = this.#follower.onHello(
      connectionId,
      peer,
      hello,
      this.#knownEpoch(),
      this.#store.lastLsn,
    );
    if (verdict.kind === "stale") assert.fail("the epoch just learned is the newest known");
    if (verdict.abandoned !== undefined) this.#discard("a new master stream started");
    return this.#helloReply(hello.epoch, hello.masterLsn, peer, verdict.previousPeer);
  }

  async #helloReply(
    epoch: number,
    masterLsn: number,
    peer: string,
    previous: string,
  ): Promise<ApplierReply> {
    const lastLsn = this.#store.lastLsn;
    const lastEpoch = this.#store.lastEpoch;
    const lastCrc = await this.#store.lastRecordCrc();
    const localWrites = this.#options.localWrites?.() ?? 0;
    this.#log.info(
      "master {master} connected (epoch {epoch}, at LSN {masterLsn}); this replica is at LSN " +
        "{lastLsn}" + (localWrites > 0 ? " with {localWrites} local writes to replace" : ""),
      { master: peer, previous, epoch, masterLsn, lastLsn, localWrites },
    );
    return {
      type: "status",
      text: helloReplyText({ lastLsn, lastEpoch, lastCrc, localWrites }),
    };
  }

  /** Refuses a frame the follower does not accept (STALEEPOCH, or a bad request). */
  #checkFrame(connectionId: number, what: string): void {
    const verdict = this.#follower.checkFrame(connectionId, what, this.#knownEpoch());
    if (verdict.kind === "ok") return;
    if (verdict.kind === "stale") throw staleStream(verdict);
    throw new ReplicateError(verdict.message);
  }

  #checkStale(connectionId: number): void {
    const stale = this.#follower.staleness(connectionId, this.#knownEpoch());
    if (stale !== undefined) throw staleStream(stale);
  }

  #applyLog(records: Uint8Array): ApplierReply {
    const refusal = this.#follower.logRefusal();
    if (refusal !== undefined) throw new ReplicateError(refusal);
    const lsn = this.#store.appendReplicated(records);
    this.#appliedFrames++;
    this.#follower.onApplied(lsn);
    // Acknowledged once durable here: that is what a sync-mode master counts on.
    return { type: "integer", value: lsn, durableLsn: lsn };
  }

  /**
   * `REPLICATE FILTER [<prefix>...]`: `same` when the data held is that filter's, else `changed`
   * (the master sends a full sync of exactly those keys; the filter is kept when it commits).
   */
  #filter(args: Uint8Array[], connectionId: number): ApplierReply {
    const prefixes = args.slice(1).map((word) => decoder.decode(word));
    try {
      KeyFilter.of(prefixes);
    } catch (error) {
      if (error instanceof KeyFilterError) throw new ReplicateError(error.message);
      throw error;
    }
    const held = this.#options.keyFilter?.() ?? [];
    if (samePrefixes(held, prefixes)) {
      this.#offeredFilter = undefined;
      return { type: "status", text: "same" };
    }
    this.#offeredFilter = { connectionId, prefixes };
    this.#log.warn(
      "master {master} gives this replica the key filter {filter} (it holds {held}): a full " +
        "sync follows",
      {
        event: "key_filter_changed",
        filter: prefixes.length === 0 ? "(none: every key)" : `[${prefixes.join(",")}]`,
        held: held.length === 0 ? "every key" : `[${held.join(",")}]`,
      },
    );
    return { type: "status", text: "changed" };
  }

  /**
   * The bytes of a LOGZ or CHUNKZ frame, unpacked within this node's bound; a frame that breaks
   * it (a zip bomb, a claim over the bound, bytes that are not the codec's) is refused and
   * logged with its numbers. The result is a new array: nothing points into the request.
   */
  #unpack(
    codecWord: Uint8Array,
    rawWord: Uint8Array,
    packed: Uint8Array,
    peer: string,
  ): Uint8Array {
    const codec = decoder.decode(codecWord);
    if (!isCodec(codec) || (this.#options.compression ?? "off") === "off") {
      throw new ReplicateError(
        `compressed frame in "${codec.slice(0, 20)}", which this replica did not accept ` +
          `(REPLICATE COMPRESS answers which codec it takes)`,
      );
    }
    const maxBytes = this.#options.maxUnpackedBytes ?? MAX_UNPACKED_BYTES;
    const rawBytes = parseCount(rawWord, "unpacked bytes");
    try {
      return unpackBatch(codec, packed, rawBytes, maxBytes);
    } catch (error) {
      if (!(error instanceof CompressionError)) throw error;
      this.#log.warn("refused a compressed frame from {master}: {reason}", {
        event: "compressed_frame_refused",
        master: peer,
        reason: error.message,
        packedBytes: packed.length,
        claimedBytes: rawBytes,
        maxBytes,
      });
      throw new ReplicateError(error.message);
    }
  }

  #snapshot(
    args: Uint8Array[],
    connectionId: number,
    peer: string,
  ): ApplierReply | Promise<ApplierReply> {
    const step = args.length > 1 ? upper(args[1]) : "";
    if (step === "BEGIN") return this.#snapshotBegin(args, connectionId);
    const phase = this.#follower.syncOf(connectionId, step);
    const sync = this.#fullSync;
    if (typeof phase === "string" || sync === undefined || sync.phase !== phase) {
      throw new ReplicateError(
        typeof phase === "string" ? phase : `REPLICATE SNAPSHOT ${step} without SNAPSHOT BEGIN`,
      );
    }
    if (step === "CHUNK" || step === "CHUNKZ") {
      const packed = step === "CHUNKZ";
      if (args.length !== (packed ? 5 : 3)) {
        throw new ReplicateError(
          packed
            ? "REPLICATE SNAPSHOT CHUNKZ requires codec, rawBytes and pairs"
            : "REPLICATE SNAPSHOT CHUNK requires pairs",
        );
      }
      const chunk = packed ? this.#unpack(args[2], args[3], args[4], peer) : args[2].slice();
      const pairs = asReplicateError(() => decodePairs(chunk));
      phase.pairs += pairs.length;
      phase.bytes += chunk.length;
      const count = phase.pairs;
      sync.chain = sync.chain.then(() => sync.writer.add(pairs));
      if (sync.progress.sent(pairs.length, chunk.length, this.#nowMs())) {
        this.#log.info(
          "full sync from the master: {records} of {totalRecords} records, {bytes} bytes " +
            "({percent}%)",
          sync.progress.figures(),
        );
      }
      return sync.chain.then(() => ({ type: "integer", value: count }));
    }
    if (step === "END") {
      if (args.length !== 3) throw new ReplicateError("REPLICATE SNAPSHOT END requires lsn");
      const lsn = parseCount(args[2], "snapshot LSN");
      const refusal = this.#follower.endRefusal(phase, lsn);
      if (refusal !== undefined) throw new ReplicateError(refusal);
      return this.#snapshotEnd(sync);
    }
    throw new ReplicateError(
      `unknown REPLICATE SNAPSHOT step "${step}" (BEGIN, CHUNK, CHUNKZ, END)`,
    );
  }

  #snapshotBegin(args: Uint8Array[], connectionId: number): Promise<ApplierReply> {
    if (args.length !== 6) {
      throw new ReplicateError("REPLICATE SNAPSHOT BEGIN requires lsn, epoch, keys and bytes");
    }
    const lsn = parseCount(args[2], "snapshot LSN");
    const epoch = parseCount(args[3], "snapshot epoch", MAX_EPOCH);
    const keys = parseCount(args[4], "snapshot keys");
    const bytes = parseCount(args[5], "snapshot bytes");
    if (this.#follower.abandonSync() !== undefined) this.#discard("a new full sync began");
    return (async () => {
      const writer = await this.#store.beginFullSync(lsn, epoch);
      const abandoned = this.#follower.beginSync(connectionId, lsn, keys);
      if (abandoned !== undefined) this.#discard("a new full sync began");
      const phase = this.#follower.sync;
      if (phase === undefined) throw new Error("the follower lost the full sync it began");
      const progress = new SyncProgress(this.#nowMs(), keys);
      this.#fullSync = { phase, writer, chain: Promise.resolve(), progress };
      this.#fullSyncs++;
      // The master sends an estimate of the bytes, or 0 when it has none (an older master).
      this.#log.warn(
        bytes > 0
          ? "full sync from the master began: {keys} keys (about {megabytes} MB) as of LSN {lsn}"
          : "full sync from the master began: {keys} keys as of LSN {lsn}",
        { keys, bytes, megabytes: Number((bytes / 1e6).toFixed(1)), lsn },
      );
      return { type: "ok" } as const;
    })();
  }

  async #snapshotEnd(sync: FullSyncState): Promise<ApplierReply> {
    await sync.chain;
    await sync.writer.commit();
    this.#follower.syncDone(sync.phase);
    if (this.#fullSync === sync) this.#fullSync = undefined;
    await this.#options.fullSyncCommitted?.();
    // The data is now the offered filter's keys (a crash before this line costs one more full
    // sync: the old filter, still kept, differs from the next offer).
    const offered = this.#offeredFilter;
    if (offered !== undefined && offered.connectionId === sync.phase.connectionId) {
      this.#offeredFilter = undefined;
      this.#options.keyFilterHeld?.(offered.prefixes);
    }
    const done = sync.progress.done(this.#nowMs());
    this.#log.info(
      "full sync from the master done: {pairs} keys, {bytes} bytes as of LSN {lsn} in " +
        "{seconds} s ({mbPerSecond} MB/s)",
      { ...done, pairs: sync.phase.pairs, lsn: sync.phase.lsn },
    );
    return { type: "integer", value: sync.phase.lsn };
  }

  /** Discards the store's side of an abandoned full sync (the old contents stay). */
  #discard(reason: string): void {
    const sync = this.#fullSync;
    if (sync === undefined) return;
    this.#fullSync = undefined;
    this.#log.warn("full sync abandoned after {pairs} keys: {reason}", {
      pairs: sync.phase.pairs,
      reason,
    });
    sync.chain.then(() => sync.writer.abort()).catch((error) =>
      this.#log.error("abandoning a full sync failed: {error}", { error: String(error) })
    );
  }

  /**
   * A connection closed. When it was the master's stream, the link is down now, and a full sync
   * it left unfinished is abandoned (the old contents stay; writes are accepted again).
   */
  connectionClosed(connectionId: number): void {
    const { streamEnded, abandoned } = this.#follower.onClosed(connectionId);
    if (!streamEnded) return;
    if (abandoned !== undefined) this.#discard("the master's connection closed");
    this.#log.warn("master {master} disconnected", { master: this.#follower.link().masterPeer });
  }

  /** This node stops being a replica (promotion): a full sync in progress is abandoned. */
  stop(): void {
    if (this.#follower.stopFollowing() !== undefined) this.#discard("this node was promoted");
  }

  /** The replica's side of `INFO replication`. */
  getInfo(): ReplicaInfo {
    const link = this.#follower.link(this.#store.lastLsn);
    const sinceMs = link.lastIoMs;
    return {
      role: "replica",
      masterLinkStatus: link.status,
      masterAddress: link.masterPeer,
      masterAdvertisedAddress: link.masterAdvertised,
      masterLastIoSecondsAgo: sinceMs < 0 ? -1 : Math.floor(sinceMs / 1000),
      masterLastIoMs: sinceMs,
      masterKnownLsn: link.masterKnownLsn,
      masterLagRecords: link.masterLagRecords,
      masterLagMs: link.masterLagMs,
      stalenessMs: link.stalenessMs,
      lastAppliedLsn: this.#store.lastLsn,
      epoch: this.#store.lastEpoch,
      masterEpoch: link.masterEpoch,
      fullSyncInProgress: this.#follower.sync !== undefined,
      appliedFrames: this.#appliedFrames,
      fullSyncs: this.#fullSyncs,
      chainDepth: link.depth,
      originAddress: link.originAddress,
      originKnownLsn: link.originKnownLsn,
      originLagRecords: link.originLagRecords,
      originLagMs: link.originLagMs,
    };
  }
}
