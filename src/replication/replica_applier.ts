/**
 * The replica side of replication: the `REPLICATE` command of a node started with `--replica`.
 * It answers the master's stream (HELLO, LOG, PING, SNAPSHOT; see `stream_protocol.ts`) and the
 * spec's manual `REPLICATE PUT|BATCHPUT|DELETE`, which are stored as local writes (they never
 * take a master LSN). Only the newest stream is served: a HELLO supersedes every earlier
 * connection, whose frames are then refused, so two master connections can never interleave.
 *
 * @module
 */
import { getLog } from "../log.ts";
import { CommandError } from "../server/hooks.ts";
import { MAX_EPOCH } from "../storage/mod.ts";
import {
  decodePairs,
  helloReplyText,
  MAX_LSN,
  parseHelloRequest,
  parseOrThrow,
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
  add(pairs: [Uint8Array, Uint8Array][]): Promise<void> | void;
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
  lastAppliedLsn: number;
  epoch: number;
  masterEpoch: number;
  fullSyncInProgress: boolean;
  /** LOG frames applied from the master since start. */
  appliedFrames: number;
  fullSyncs: number;
}

interface FullSyncState {
  connectionId: number;
  lsn: number;
  writer: FullSyncWriter;
  pairs: number;
  expectedPairs: number;
  /** Bytes of pair data received (keys, values and their length fields). */
  bytes: number;
  startedMs: number;
  /** Progress is logged at each further 10%, or after 5 s without a line. */
  nextReportPercent: number;
  lastReportMs: number;
  chain: Promise<void>;
}

/** Longest time a full sync goes without a progress line. */
const FULL_SYNC_REPORT_MS = 5_000;

const decoder = new TextDecoder();

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

/** What a {@link ReplicaApplier} learns from its node (all optional). */
export interface ApplierOptions {
  /**
   * Local writes (the manual `REPLICATE PUT|BATCHPUT|DELETE`) this replica holds that no full
   * sync has replaced yet: a HELLO reply says how many, and the master then sends a full sync.
   */
  localWrites?: () => number;
  /** A full sync was committed: the replica's contents are the master's, local writes gone. */
  fullSyncCommitted?: () => Promise<void>;
}

/** Serves `REPLICATE` on a replica. */
export class ReplicaApplier {
  readonly #store: ReplicaStore;
  readonly #nowMs: () => number;
  readonly #options: ApplierOptions;
  readonly #log = getLog("replication");
  #streamConnection = 0;
  #masterAddress = "";
  #masterAdvertised = "";
  #masterKnownLsn = 0;
  /** When this replica first knew of a master record it had not applied; undefined: none. */
  #behindSinceMs: number | undefined;
  #masterEpoch = 0;
  #linkUpWithinMs = 0;
  #lastContactMs: number | undefined;
  #fullSync: FullSyncState | undefined;
  #appliedFrames = 0;
  #fullSyncs = 0;

  constructor(store: ReplicaStore, nowMs: () => number = Date.now, options: ApplierOptions = {}) {
    this.#store = store;
    this.#nowMs = nowMs;
    this.#options = options;
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
        this.#checkStream(connectionId, "LOG");
        if (args.length !== 2) throw new ReplicateError("REPLICATE LOG requires records");
        return this.#applyLog(args[1]);
      case "PING":
        this.#checkStream(connectionId, "PING");
        if (args.length > 1) this.#learnMasterLsn(parseCount(args[1], "master LSN"));
        return { type: "integer", value: this.#store.lastLsn };
      case "SNAPSHOT":
        this.#checkStream(connectionId, "SNAPSHOT");
        return this.#snapshot(args, connectionId);
      default:
        throw new ReplicateError(
          `unknown REPLICATE subcommand "${sub}" (PUT, BATCHPUT, DELETE, or the master's ` +
            `HELLO, LOG, PING, SNAPSHOT)`,
        );
    }
  }

  async #hello(args: Uint8Array[], connectionId: number, peer: string): Promise<ApplierReply> {
    const { epoch, masterLsn, pingIntervalMs, timeoutMs, masterAddress } = asReplicateError(() =>
      parseHelloRequest(args)
    );
    this.#masterAdvertised = masterAddress;
    this.#masterKnownLsn = 0;
    this.#behindSinceMs = undefined;
    this.#learnMasterLsn(masterLsn);
    this.#linkUpWithinMs = pingIntervalMs + timeoutMs;
    if (this.#fullSync !== undefined) this.#abortFullSync("a new master stream started");
    const previous = this.#masterAddress;
    this.#streamConnection = connectionId;
    this.#masterAddress = peer;
    this.#masterEpoch = epoch;
    this.#lastContactMs = this.#nowMs();
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

  /** The master has `lsn`: when this replica has not applied it, it lags from now on. */
  #learnMasterLsn(lsn: number): void {
    if (lsn > this.#masterKnownLsn) this.#masterKnownLsn = lsn;
    if (this.#masterKnownLsn > this.#store.lastLsn) this.#behindSinceMs ??= this.#nowMs();
    else this.#behindSinceMs = undefined;
  }

  #checkStream(connectionId: number, what: string): void {
    if (this.#streamConnection === 0) {
      throw new ReplicateError(`REPLICATE ${what} before REPLICATE HELLO`);
    }
    if (connectionId !== this.#streamConnection) {
      throw new ReplicateError(
        `REPLICATE ${what} on a stream superseded by a newer REPLICATE HELLO; reconnect`,
      );
    }
    this.#lastContactMs = this.#nowMs();
  }

  #applyLog(records: Uint8Array): ApplierReply {
    if (this.#fullSync !== undefined) {
      throw new ReplicateError("REPLICATE LOG during a full sync (expected SNAPSHOT END)");
    }
    const lsn = this.#store.appendReplicated(records);
    this.#appliedFrames++;
    if (this.#behindSinceMs !== undefined) this.#learnMasterLsn(lsn);
    // Acknowledged once durable here: that is what a sync-mode master counts on.
    return { type: "integer", value: lsn, durableLsn: lsn };
  }

  #snapshot(args: Uint8Array[], connectionId: number): ApplierReply | Promise<ApplierReply> {
    const step = args.length > 1 ? upper(args[1]) : "";
    if (step === "BEGIN") {
      if (args.length !== 6) {
        throw new ReplicateError("REPLICATE SNAPSHOT BEGIN requires lsn, epoch, keys and bytes");
      }
      const lsn = parseCount(args[2], "snapshot LSN");
      const epoch = parseCount(args[3], "snapshot epoch", MAX_EPOCH);
      const keys = parseCount(args[4], "snapshot keys");
      const bytes = parseCount(args[5], "snapshot bytes");
      if (this.#fullSync !== undefined) this.#abortFullSync("a new full sync began");
      return (async () => {
        const writer = await this.#store.beginFullSync(lsn, epoch);
        const startedMs = this.#nowMs();
        this.#fullSync = {
          connectionId,
          lsn,
          writer,
          pairs: 0,
          expectedPairs: keys,
          bytes: 0,
          startedMs,
          nextReportPercent: 10,
          lastReportMs: startedMs,
          chain: Promise.resolve(),
        };
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
    const sync = this.#fullSync;
    if (sync === undefined || sync.connectionId !== connectionId) {
      throw new ReplicateError(`REPLICATE SNAPSHOT ${step} without SNAPSHOT BEGIN`);
    }
    if (step === "CHUNK") {
      if (args.length !== 3) throw new ReplicateError("REPLICATE SNAPSHOT CHUNK requires pairs");
      const pairs = asReplicateError(() => decodePairs(args[2].slice()));
      sync.pairs += pairs.length;
      sync.bytes += args[2].length;
      const count = sync.pairs;
      sync.chain = sync.chain.then(() => sync.writer.add(pairs));
      this.#reportFullSync(sync);
      return sync.chain.then(() => ({ type: "integer", value: count }));
    }
    if (step === "END") {
      if (args.length !== 3) throw new ReplicateError("REPLICATE SNAPSHOT END requires lsn");
      const lsn = parseCount(args[2], "snapshot LSN");
      if (lsn !== sync.lsn) {
        throw new ReplicateError(`SNAPSHOT END at LSN ${lsn} does not match BEGIN's ${sync.lsn}`);
      }
      return (async () => {
        await sync.chain;
        await sync.writer.commit();
        if (this.#fullSync === sync) this.#fullSync = undefined;
        await this.#options.fullSyncCommitted?.();
        const seconds = Math.max(0.001, (this.#nowMs() - sync.startedMs) / 1000);
        this.#log.info(
          "full sync from the master done: {pairs} keys, {bytes} bytes as of LSN {lsn} in " +
            "{seconds} s ({mbPerSecond} MB/s)",
          {
            pairs: sync.pairs,
            bytes: sync.bytes,
            lsn,
            seconds: Number(seconds.toFixed(3)),
            mbPerSecond: Number((sync.bytes / 1e6 / seconds).toFixed(1)),
          },
        );
        return { type: "integer", value: lsn } as const;
      })();
    }
    throw new ReplicateError(`unknown REPLICATE SNAPSHOT step "${step}" (BEGIN, CHUNK, END)`);
  }

  /** Logs the progress of a full sync at each further 10%, and at least every 5 s. */
  #reportFullSync(sync: FullSyncState): void {
    const now = this.#nowMs();
    const percent = sync.expectedPairs > 0
      ? Math.min(100, Math.floor((sync.pairs / sync.expectedPairs) * 100))
      : 0;
    if (percent < sync.nextReportPercent && now - sync.lastReportMs < FULL_SYNC_REPORT_MS) return;
    sync.nextReportPercent = Math.floor(percent / 10) * 10 + 10;
    sync.lastReportMs = now;
    this.#log.info(
      "full sync from the master: {records} of {totalRecords} records, {bytes} bytes " +
        "({percent}%)",
      { records: sync.pairs, totalRecords: sync.expectedPairs, bytes: sync.bytes, percent },
    );
  }

  #abortFullSync(reason: string): void {
    const sync = this.#fullSync;
    if (sync === undefined) return;
    this.#fullSync = undefined;
    this.#log.warn("full sync abandoned after {pairs} keys: {reason}", {
      pairs: sync.pairs,
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
    if (connectionId !== this.#streamConnection) return;
    this.#streamConnection = 0;
    if (this.#fullSync !== undefined) this.#abortFullSync("the master's connection closed");
    this.#log.warn("master {master} disconnected", { master: this.#masterAddress });
  }

  /** The replica's side of `INFO replication`. */
  getInfo(): ReplicaInfo {
    const now = this.#nowMs();
    const sinceMs = this.#lastContactMs === undefined ? -1 : now - this.#lastContactMs;
    // The master pings an idle link every health-check interval and gives up on a reply after
    // its timeout (it says both in HELLO): silence beyond their sum means the link is down.
    return {
      role: "replica",
      masterLinkStatus: this.#streamConnection !== 0 && sinceMs >= 0 &&
          sinceMs <= this.#linkUpWithinMs
        ? "up"
        : "down",
      masterAddress: this.#masterAddress,
      masterAdvertisedAddress: this.#masterAdvertised,
      masterLastIoSecondsAgo: sinceMs < 0 ? -1 : Math.floor(sinceMs / 1000),
      masterLastIoMs: sinceMs,
      masterKnownLsn: Math.max(this.#masterKnownLsn, this.#store.lastLsn),
      masterLagRecords: Math.max(0, this.#masterKnownLsn - this.#store.lastLsn),
      masterLagMs: this.#behindSinceMs === undefined || this.#masterKnownLsn <= this.#store.lastLsn
        ? 0
        : now - this.#behindSinceMs,
      lastAppliedLsn: this.#store.lastLsn,
      epoch: this.#store.lastEpoch,
      masterEpoch: this.#masterEpoch,
      fullSyncInProgress: this.#fullSync !== undefined,
      appliedFrames: this.#appliedFrames,
      fullSyncs: this.#fullSyncs,
    };
  }
}
