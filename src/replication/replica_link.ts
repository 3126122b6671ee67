/**
 * The I/O around one {@link ReplicaNode}: its one persistent connection, its one sender loop and
 * its one reply reader. The node decides; the link connects, writes what the node says, reads the
 * replies back into it, and enforces `REPLICATION_TIMEOUT` on every awaited reply with one
 * watchdog timer. Records leave strictly in LSN order because only this loop writes.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { challengeProof, isHex64, newNonce, proofMatches } from "../protocol/challenge.ts";
import { LogGapError } from "../storage/errors.ts";
import { findCommonLsn } from "./divergence.ts";
import { RespErrorReply, type RespValue } from "../protocol/resp.ts";
import {
  concatRuns,
  RECORD_HEADER_BYTES,
  recordCrcAt,
  recordEpochAt,
  recordLengthAt,
  recordLsnAt,
  recordsThrough,
} from "./log_records.ts";
import { LinkConnection, LinkError } from "./link_connection.ts";
import { SyncProgress } from "./sync_progress.ts";
import type { FullSyncDecision, ReplicaNode } from "./replica_node.ts";
import { Wakeup } from "./wakeup.ts";
import { BatchPacker, type Codec, type CompressionSetting, isCodec } from "./compression.ts";
import { filterRecords, KeyFilter } from "./key_filter.ts";
import type { ChainReport } from "./replicator.ts";
import {
  compressRequest,
  describeReply,
  encodeRequest,
  expectInteger,
  filterRequest,
  formatRequest,
  helloRequest,
  LogFrameWriter,
  packedChunkRequest,
  packedLogRequest,
  PairChunkWriter,
  parseHelloReply,
  pingRequest,
  RECORD_FORMAT,
  snapshotBeginRequest,
  snapshotChunkRequest,
  snapshotEndRequest,
} from "./stream_protocol.ts";

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
  chain?(): ChainReport;
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

/**
 * A session ended for a reason of the source's (a forwarding replica waits for its master, or its
 * log was replaced): no failure of the replica's.
 */
export class LinkPaused extends Error {
  override name = "LinkPaused";
}

async function connectTcp(host: string, port: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: host, port });
  conn.setNoDelay(true);
  return conn;
}

/** The sender of one replica. */
export class ReplicaLink {
  readonly node: ReplicaNode;
  readonly #ctx: LinkContext;
  readonly #wakeup = new Wakeup();
  /** Frames are built here; #send writes each one completely before the next is built. */
  readonly #frames = new LogFrameWriter();
  /** The current session's connection (undefined between sessions). */
  #wire: LinkConnection | undefined;
  /** Wakes an idle sender when a ping falls due; armed at most once at a time. */
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  /** {@link retryNow} was called: the backoff in progress ends at once. */
  #retryNow = false;
  #running: Promise<void> | undefined;
  #warnedNoToken = false;
  /** The epoch of the record a sub-replica ahead of this forwarding replica holds at its LSN. */
  #aheadEpoch = 0;
  /** When an unhealthy replica's failures were last logged (once per health-check interval). */
  #downReportedMs = 0;
  /** Packs this session's frames with the codec the replica accepted (undefined: uncompressed). */
  #packer: BatchPacker | undefined;

  constructor(node: ReplicaNode, ctx: LinkContext) {
    this.node = node;
    this.#ctx = ctx;
  }

  /** Starts the sender loop. */
  start(): void {
    this.#running ??= this.#run();
  }

  /** Something changed (new records, a reply): let the sender look again. */
  wake(): void {
    this.#wakeup.notify();
  }

  /**
   * The replica is back (say, a failover coordinator saw it register again): the next attempt
   * comes now, not at the end of its backoff.
   */
  retryNow(): void {
    this.#retryNow = true;
    this.#wakeup.notify();
  }

  /**
   * Ends the current session without counting a failure (a forwarding replica pauses, or its log
   * was replaced); the loop then waits until the source is ready and starts a new one.
   */
  interrupt(reason: string): void {
    this.#wire?.fail(new LinkPaused(reason));
    this.#wakeup.notify();
  }

  /**
   * A session is open: connected, in the handshake or streaming. A replica whose handshake is
   * still running is "down" for every other purpose, but a graceful stop waits for it too.
   */
  get inSession(): boolean {
    return this.#wire !== undefined;
  }

  /** Stops the loop and closes the connection. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wire?.fail(new LinkError("the master is shutting down"));
    this.#wakeup.notify();
    await this.#running;
  }

  async #run(): Promise<void> {
    const { log } = this.#ctx;
    let delayMs = 0;
    while (!this.#stopped) {
      if (delayMs > 0) {
        // Only stop() may cut a backoff short. Wakes from the failed session (its #fail) and
        // from new records would otherwise start an attempt per write while a replica is down.
        const retryAtMs = this.#ctx.nowMs() + delayMs;
        // Bounded: each pass waits until the deadline or a wake; the deadline does not move.
        for (
          let remainingMs = delayMs;
          remainingMs > 0 && !this.#stopped && !this.#retryNow;
          remainingMs = retryAtMs - this.#ctx.nowMs()
        ) {
          this.#wakeup.forget();
          await this.#wakeup.wait(remainingMs);
        }
        if (this.#stopped) break;
      }
      this.#retryNow = false;
      if (await this.#waitReady()) break;
      try {
        await this.#session();
      } catch (error) {
        if (this.#stopped) break;
        if (error instanceof LinkPaused) {
          this.node.markPaused(error.message);
          delayMs = 0;
          log.info("replica {replica}: forwarding paused: {reason}", {
            replica: this.node.address,
            reason: error.message,
          });
          continue;
        }
        const reason = error instanceof Error ? error.message : String(error);
        const wasHealthy = this.node.healthy;
        const outcome = this.node.markFailure(this.#ctx.nowMs(), reason);
        delayMs = outcome.retryDelayMs;
        this.#logFailure(reason, delayMs, outcome.becameUnhealthy);
        if (wasHealthy !== this.node.healthy) this.#ctx.onHealthChange(this.node);
      } finally {
        this.#endSession();
      }
    }
    this.#endSession();
  }

  /**
   * Logs a failed attempt: each one while the replica is healthy, then (probed every
   * `retryDelayMs`, a second by default) one line per health-check interval with the count.
   */
  #logFailure(reason: string, retryDelayMs: number, becameUnhealthy: boolean): void {
    const { log, nowMs } = this.#ctx;
    const { node } = this;
    const fields = {
      replica: node.address,
      reason,
      retryDelayMs,
      failures: node.consecutiveFailures,
      maxFailures: node.policy.maxFailures,
      intervalMs: node.policy.healthCheckIntervalMs,
    };
    if (becameUnhealthy) {
      log.error(
        "replica {replica} marked unhealthy after {failures} consecutive failures ({reason}); " +
          "probing it every {retryDelayMs} ms, reported every {intervalMs} ms",
        fields,
      );
      this.#downReportedMs = nowMs();
      return;
    }
    if (!node.healthy) {
      if (nowMs() - this.#downReportedMs < node.policy.healthCheckIntervalMs) return;
      this.#downReportedMs = nowMs();
      log.warn(
        "replica {replica} still down after {failures} consecutive failures: {reason}; " +
          "probing it every {retryDelayMs} ms",
        fields,
      );
      return;
    }
    log.warn(
      "replica {replica} failed: {reason}; next attempt in {retryDelayMs} ms " +
        "(consecutive failures: {failures}, unhealthy at {maxFailures})",
      fields,
    );
  }

  /**
   * A forwarding replica waits (re-checking every second, or when woken) until it can serve its
   * sub-replicas; the link shows down with the reason meanwhile. Resolves true when stopped.
   */
  async #waitReady(): Promise<boolean> {
    const notReady = this.#ctx.notReady;
    if (notReady === undefined) return false;
    for (let why = notReady(); why !== undefined && !this.#stopped; why = notReady()) {
      if (this.node.lastError !== why) this.node.markPaused(why);
      this.#wakeup.forget();
      await this.#wakeup.wait(1000);
    }
    return this.#stopped;
  }

  #endSession(): void {
    if (this.#pingTimer !== undefined) {
      clearTimeout(this.#pingTimer);
      this.#pingTimer = undefined;
    }
    this.#wire?.close();
    this.#wire = undefined;
  }

  /** The session's connection; a sender that runs has one. */
  get #w(): LinkConnection {
    const wire = this.#wire;
    if (wire === undefined) throw new LinkError("not connected");
    return wire;
  }

  async #session(): Promise<void> {
    const { node } = this;
    const { log } = this.#ctx;
    const conn = await this.#connect();
    if (this.#stopped) {
      conn.close();
      throw new LinkError("the master is shutting down");
    }
    this.#wire = new LinkConnection(conn, node, {
      nowMs: this.#ctx.nowMs,
      maxReplyBytes: this.#ctx.maxReplyBytes,
      onAck: () => this.#ctx.onAck(node),
      onRefused: (code, message) => this.#ctx.onRefused?.(node, code, message),
      wake: () => this.#wakeup.notify(),
    });
    if (this.#ctx.authToken !== undefined) await this.#authenticate(this.#ctx.authToken);
    await this.#checkFormat();
    const wasHealthy = node.healthy;
    const hello = await this.#w.request(
      helloRequest(
        this.#ctx.epoch(),
        node.durableLsn,
        node.policy.healthCheckIntervalMs,
        node.policy.timeoutMs,
        this.#ctx.masterAddress?.(),
      ),
      "hello",
    );
    const { lastLsn, lastEpoch, lastCrc, localWrites } = parseHelloReply(hello);
    const filterChanged = await this.#negotiate();
    const master = lastLsn > node.durableLsn ? undefined : await this.#recordAt(lastLsn);
    this.#w.throwIfFailed();
    const decision = node.onHandshake(
      {
        replicaLsn: lastLsn,
        replicaEpoch: lastEpoch,
        replicaCrc: lastCrc,
        masterEpochAtReplicaLsn: master?.epoch,
        masterCrcAtReplicaLsn: master?.crc ?? 0,
        replicaLocalWrites: localWrites,
        filterChanged,
      },
      this.#ctx.nowMs(),
    );
    if (!wasHealthy) {
      log.info("replica {replica} is healthy again", { replica: node.address });
      this.#ctx.onHealthChange(node);
    }
    log.info(
      "replica {replica} connected at LSN {replicaLsn} (master at {masterLsn}): {state}",
      {
        replica: node.address,
        replicaLsn: lastLsn,
        masterLsn: node.durableLsn,
        state: decision.kind === "full_sync"
          ? `full sync (${decision.reason})`
          : decision.kind === "ahead"
          ? `ahead: it holds LSN ${lastLsn}, past this node's ${node.durableLsn}; streaming ` +
            `resumes once this node's log reaches it and the record there matches`
          : node.state,
      },
    );
    if (decision.kind === "ahead") this.#aheadEpoch = lastEpoch;
    if (decision.kind === "full_sync") {
      if (decision.diverged) await this.#reportDivergence(lastLsn, lastEpoch);
      await this.#fullSync();
    }
    this.#ctx.onAck(node);
    await this.#stream();
  }

  /**
   * Asks which record format the replica reads (`REPLICATE FORMAT`): one from before format 2
   * could not read this master's expiring, MULTI or FLUSH records, so it is refused with what to
   * do (the link retries with backoff, and streams once the replica is upgraded).
   */
  async #checkFormat(): Promise<void> {
    const reply = await this.#w.request(formatRequest(), "format");
    if (typeof reply === "number" && reply >= RECORD_FORMAT) return;
    throw new LinkError(
      `replica ${this.node.address} runs an older kvstore: it reads record format ` +
        `${typeof reply === "number" ? reply : 1}, this master writes format ${RECORD_FORMAT} ` +
        `(expiry, MULTI and FLUSH records; it answered REPLICATE FORMAT with ` +
        `${describeReply(reply)}). Upgrade the replica first: a newer replica follows an older ` +
        `master, not the other way round`,
    );
  }

  /**
   * Proves the replication token and has the replica prove it (`CHALLENGE`, `PROVE`; see
   * `src/protocol/challenge.ts`): the token never crosses the wire, and nothing else is sent to a
   * replica that cannot prove it. A replica without tokens is tolerated, with a warning.
   */
  async #authenticate(token: string): Promise<void> {
    const dialerNonce = newNonce();
    // A refusal fails the request (see #onReply); the only error that comes back is "no tokens".
    const challenge = await this.#w.request(encodeRequest(["CHALLENGE", dialerNonce]), "auth");
    if (challenge instanceof RespErrorReply) {
      if (!this.#warnedNoToken) {
        this.#warnedNoToken = true;
        this.#ctx.log.warn(
          "replica {replica} has no token: it accepts REPLICATE from anyone who reaches it; " +
            "give it REPLICATION_TOKEN (or AUTH_TOKEN) too",
          { replica: this.node.address },
        );
      }
      return;
    }
    const nodeNonce = typeof challenge === "string" ? challenge : "";
    if (!isHex64(nodeNonce)) {
      throw new LinkError(`CHALLENGE: ${describeReply(challenge)} instead of a nonce`);
    }
    const proof = challengeProof(token, "dialer", dialerNonce, nodeNonce);
    const reply = await this.#w.request(encodeRequest(["PROVE", proof]), "auth");
    const expected = challengeProof(token, "node", dialerNonce, nodeNonce);
    if (typeof reply !== "string" || !proofMatches(reply, expected)) {
      throw new LinkError(
        "replica did not prove it holds the replication token (a different token, or not " +
          "the node you meant: check the address); nothing sent to it",
      );
    }
  }

  async #connect(): Promise<Deno.Conn> {
    const { timeoutMs } = this.node.policy;
    const attempt = (this.#ctx.connect ?? connectTcp)(this.node.host, this.node.port);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new LinkError(`connect timed out after REPLICATION_TIMEOUT ${timeoutMs / 1000} s`),
          ),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([attempt, timeout]);
    } catch (error) {
      attempt.then((late) => late.close(), () => {});
      if (error instanceof LinkError) throw error;
      throw new LinkError(`connect failed: ${error instanceof Error ? error.message : error}`);
    } finally {
      clearTimeout(timer);
    }
  }

  async #stream(): Promise<void> {
    const { node } = this;
    const notReady = this.#ctx.notReady;
    const chain = this.#ctx.chain;
    for (;;) {
      this.#w.throwIfFailed();
      if (notReady !== undefined) {
        const why = notReady();
        if (why !== undefined) throw new LinkPaused(why);
      }
      if (chain !== undefined && node.chainReportDue(this.#ctx.nowMs())) {
        node.onChainReported(this.#ctx.nowMs());
        await this.#w.send(pingRequest(node.durableLsn, chain()), "ping", 0);
        continue;
      }
      const next = node.nextSend();
      if (next.kind === "queue") {
        const last = next.batches[next.batches.length - 1].lastLsn;
        const records = next.batches.map((b) => b.records);
        await this.#w.send(this.#logFrame(records), "log", 0, last);
      } else if (next.kind === "log") {
        try {
          await this.#catchUp(next.afterLsn, next.uptoLsn);
        } catch (error) {
          if (!(error instanceof LogGapError)) throw error;
          await this.#waitAllReplies();
          this.#logFullSync(node.onLogGap(error.message));
          await this.#fullSync();
        }
      } else if (next.kind === "verify") {
        await this.#verify(next.lsn);
      } else if (node.pingDue(this.#ctx.nowMs())) {
        await this.#w.send(pingRequest(node.durableLsn), "ping", 0);
      } else if (node.pendingReplies > 0) {
        // A reply, a failure or new records wake it; the watchdog (armed while replies are
        // due) fails the link when no reply comes within the timeout.
        await this.#wakeup.wait();
      } else {
        this.#armPingTimer();
        await this.#wakeup.wait();
      }
    }
  }

  /**
   * This forwarding replica's log reached the LSN its sub-replica holds: the sub-replica streams
   * on when the record there is the same here, else (its log left this history) it gets a full
   * sync, as at a handshake.
   */
  async #verify(lsn: number): Promise<void> {
    const record = await this.#recordAt(lsn);
    this.#w.throwIfFailed();
    const { node } = this;
    const decision = node.onVerified({
      masterEpochAtReplicaLsn: record?.epoch,
      masterCrcAtReplicaLsn: record?.crc ?? 0,
    });
    this.#ctx.log.info(
      "replica {replica}: this node reached LSN {lsn}, which it holds: {state}",
      {
        replica: node.address,
        lsn,
        state: decision.kind === "full_sync" ? `full sync (${decision.reason})` : node.state,
      },
    );
    if (decision.kind !== "full_sync") return;
    await this.#waitAllReplies();
    if (decision.diverged) await this.#reportDivergence(lsn, this.#aheadEpoch);
    await this.#fullSync();
  }

  /**
   * After HELLO, in one round trip: offers this node's codec (`REPLICATE COMPRESS`, when
   * compression is on) and tells the replica its key filter (`REPLICATE FILTER`, none for a
   * replica that receives every key). Resolves to why the replica's data does not match its
   * filter (it then needs a full sync), or undefined when it does.
   */
  async #negotiate(): Promise<string | undefined> {
    this.#packer = undefined;
    const setting = this.#ctx.compression?.setting ?? "off";
    if (!this.node.keyFilterGiven) {
      this.node.keyFilter = KeyFilter.of(this.#ctx.heldKeyFilter?.());
    }
    const prefixes = this.node.keyFilter?.prefixes ?? [];
    const compressed = setting === "off"
      ? undefined
      : this.#w.request(compressRequest(setting), "compress");
    const filtered = this.#w.request(filterRequest(prefixes), "filter");
    filtered.catch(() => {}); // a failed connection rejects both; the first await throws it
    if (setting === "off" || compressed === undefined) this.node.compression = "off";
    else this.#onCompressReply(setting, await compressed);
    const reply = await filtered;
    if (reply === "same") return undefined;
    if (reply === "changed") {
      return prefixes.length === 0
        ? "the replica held only some keys (a key filter) and now receives every key"
        : `the replica's key filter is now ${this.node.keyFilter}: it must hold exactly those keys`;
    }
    if (prefixes.length === 0) return undefined; // a replica from before key filters: it has all
    throw new LinkError(
      `replica cannot take a key filter (${describeReply(reply)}): it is older than selective ` +
        `replication; upgrade it, or list it without [prefixes]`,
    );
  }

  /** The replica's answer to the codec offered (`setting`): the session's codec, or none. */
  #onCompressReply(setting: Codec, reply: RespValue): void {
    const accepted = typeof reply === "string" ? reply : "";
    const minBytes = this.#ctx.compression?.minBytes ?? Infinity;
    this.#packer = isCodec(accepted) && accepted === setting
      ? new BatchPacker(accepted, minBytes)
      : undefined;
    this.node.compression = this.#packer?.codec ??
      (reply instanceof RespErrorReply ? "unsupported by the replica" : "refused by the replica");
    if (this.#packer === undefined) {
      this.#ctx.log.info(
        "replica {replica} does not take {codec} frames ({why}): its stream is uncompressed",
        { replica: this.node.address, codec: setting, why: describeReply(reply) },
      );
    }
  }

  /**
   * The frame carrying `runs` of records: filtered for a replica with a key filter, then LOGZ
   * when this session packs and packing pays, else LOG.
   */
  #logFrame(runs: readonly Uint8Array[]): Uint8Array {
    const filter = this.node.keyFilter;
    const records = filter === undefined ? runs : runs.map((run) => filterRecords(run, filter));
    const packer = this.#packer;
    let rawBytes = 0;
    for (const run of records) rawBytes += run.length;
    if (packer !== undefined && rawBytes >= packer.minBytes) {
      const packed = packer.pack(records.length === 1 ? records[0] : concatRuns(records));
      if (packed !== undefined) {
        this.node.countSent(rawBytes, packed.length);
        return packedLogRequest(packer.codec, rawBytes, packed);
      }
    }
    this.node.countSent(rawBytes, rawBytes);
    return this.#frames.frame(records);
  }

  /** A snapshot chunk's frame: CHUNKZ when this session packs and packing pays, else CHUNK. */
  #chunkFrame(chunk: Uint8Array): Uint8Array {
    const packer = this.#packer;
    const packed = packer?.pack(chunk);
    this.node.countSent(chunk.length, packed?.length ?? chunk.length);
    return packer !== undefined && packed !== undefined
      ? packedChunkRequest(packer.codec, chunk.length, packed)
      : snapshotChunkRequest(chunk);
  }

  #logFullSync(decision: FullSyncDecision): void {
    this.#ctx.log.warn("replica {replica} needs a full sync: {reason}", {
      replica: this.node.address,
      reason: decision.reason,
    });
  }

  /** Wakes the sender when an idle link's ping falls due (one timer, not one per wait). */
  #armPingTimer(): void {
    if (this.#pingTimer !== undefined) return;
    const dueAtMs = Math.min(this.node.pingDueAtMs(), this.node.chainReportDueAtMs());
    const delayMs = Math.max(1, dueAtMs - this.#ctx.nowMs());
    this.#pingTimer = setTimeout(() => {
      this.#pingTimer = undefined;
      this.#wakeup.notify();
    }, delayMs);
  }

  /**
   * Sends the log's records `afterLsn+1 .. uptoLsn`. The storage gives chunks of whole records of
   * at most the batch size: each chunk is one frame, cut at `uptoLsn`.
   */
  async #catchUp(afterLsn: number, uptoLsn: number): Promise<void> {
    let sentLast = afterLsn;
    for await (const chunk of this.#ctx.source.readLogFrom(afterLsn, this.node.policy.batchBytes)) {
      this.#w.throwIfFailed();
      const { end, lastLsn: last } = recordsThrough(chunk, uptoLsn, sentLast);
      if (end > 0) {
        await this.#waitWindow();
        await this.#w.send(this.#logFrame([chunk.subarray(0, end)]), "log", 0, last);
        sentLast = last;
      }
      if (end < chunk.length || sentLast >= uptoLsn) break;
    }
    if (sentLast < uptoLsn) {
      throw new LinkError(`the log ended at LSN ${sentLast}, before the durable LSN ${uptoLsn}`);
    }
  }

  async #fullSync(): Promise<void> {
    const { node } = this;
    const snapshot = await this.#ctx.source.snapshot();
    try {
      const progress = new SyncProgress(this.#ctx.nowMs(), snapshot.keys ?? 0);
      await this.#w.request(
        snapshotBeginRequest(
          snapshot.lsn,
          this.#ctx.epoch(),
          progress.totalKeys,
          snapshot.bytes ?? 0,
        ),
        "snapshot",
      );
      const writer = new PairChunkWriter(this.#ctx.snapshotChunkBytes);
      const flush = async () => {
        if (writer.pairs === 0) return;
        const pairs = writer.pairs;
        const chunk = writer.take();
        while (!node.snapshotWindowOpen(pairs)) {
          this.#w.throwIfFailed();
          await this.#wakeup.wait(); // replies are due: the watchdog bounds the wait
        }
        await this.#w.send(this.#chunkFrame(chunk), "chunk", pairs);
        if (progress.sent(pairs, chunk.length, this.#ctx.nowMs())) {
          this.#ctx.log.info(
            "full sync of replica {replica}: {records} of {totalRecords} records, {bytes} bytes " +
              "({percent}%)",
            { replica: node.address, ...progress.figures() },
          );
        }
      };
      const filter = this.node.keyFilter;
      for await (const [key, value, expiresAtMs = 0] of snapshot.entries) {
        this.#w.throwIfFailed();
        if (filter !== undefined && !filter.matches(key)) continue;
        if (writer.wouldOverflow(key, value, expiresAtMs)) await flush();
        writer.add(key, value, expiresAtMs);
      }
      await flush();
      const end = await this.#w.request(snapshotEndRequest(snapshot.lsn), "snapshot");
      const endLsn = expectInteger(end, "SNAPSHOT END");
      if (endLsn !== snapshot.lsn) {
        throw new LinkError(`replica ended the full sync at LSN ${endLsn}, not ${snapshot.lsn}`);
      }
      node.onFullSyncDone(snapshot.lsn, this.#ctx.nowMs());
      this.#ctx.log.info(
        "full sync of replica {replica} done: {records} records, {bytes} bytes at LSN {lsn} in " +
          "{seconds} s ({mbPerSecond} MB/s); catching up from the log",
        { replica: node.address, lsn: snapshot.lsn, ...progress.done(this.#ctx.nowMs()) },
      );
    } finally {
      snapshot.release();
    }
  }

  /**
   * The replica's log left this master's history (an old master back as a replica): finds the
   * last LSN both share, logs how many of the replica's records lie past it, and tells the
   * replica (`REPLICATE DIVERGED`), which logs and counts them before the full sync replaces them.
   */
  async #reportDivergence(replicaLsn: number, replicaEpoch: number): Promise<void> {
    const commonLsn = await findCommonLsn(
      {
        replicaLsn,
        replicaEpoch,
        oldestCompleteLsn: this.#ctx.source.oldestCompleteLsn ?? 0,
        durableLsn: this.node.durableLsn,
      },
      async (lsn) => (await this.#recordAt(lsn))?.epoch,
    );
    if (commonLsn === undefined) return;
    const records = replicaLsn - commonLsn;
    this.node.discardedRecords += records;
    this.#ctx.log.warn(
      "replica {replica} diverged after LSN {commonLsn}: its {records} records past that point " +
        "(epoch {replicaEpoch}) are not in this master's history (epoch {epoch}); they are " +
        "discarded by a full sync",
      {
        replica: this.node.address,
        commonLsn,
        records,
        replicaEpoch,
        epoch: this.#ctx.epoch(),
      },
    );
    await this.#w.request(
      encodeRequest(["REPLICATE", "DIVERGED", String(commonLsn), String(this.#ctx.epoch())]),
      "diverged",
    );
  }

  /**
   * Epoch and CRC of the master's record at `lsn` (epoch 0 and CRC 0 for LSN 0), or undefined
   * when the log no longer holds everything after `lsn`.
   */
  async #recordAt(lsn: number): Promise<{ epoch: number; crc: number } | undefined> {
    const oldest = this.#ctx.source.oldestCompleteLsn ?? 0;
    if (lsn === 0) return oldest === 0 ? { epoch: 0, crc: 0 } : undefined;
    if (lsn - 1 < oldest) return undefined;
    try {
      for await (const chunk of this.#ctx.source.readLogFrom(lsn - 1)) {
        if (chunk.length < RECORD_HEADER_BYTES || recordLsnAt(chunk, 0) !== lsn) return undefined;
        // A filtered replica holds the filtered form of the record: its CRC is that one's.
        const filter = this.node.keyFilter;
        const record = filter === undefined
          ? chunk
          : filterRecords(chunk.subarray(0, recordLengthAt(chunk, 0)), filter);
        return { epoch: recordEpochAt(record, 0), crc: recordCrcAt(record, 0) };
      }
      return undefined;
    } catch (error) {
      if (error instanceof LogGapError) return undefined;
      throw error;
    }
  }

  /** Waits until every request sent on this connection has its reply. */
  async #waitAllReplies(): Promise<void> {
    while (this.node.pendingReplies > 0) {
      this.#w.throwIfFailed();
      await this.#wakeup.wait(); // replies are due: the watchdog bounds the wait
    }
  }

  async #waitWindow(): Promise<void> {
    while (!this.node.windowOpen()) {
      this.#w.throwIfFailed();
      // A closed window means records are unacknowledged: the watchdog bounds the wait.
      await this.#wakeup.wait();
    }
    this.#w.throwIfFailed();
  }
}
