/**
 * The I/O around one {@link ReplicaNode}: its one persistent connection, its one sender loop and
 * its one reply reader. The node decides; the link connects, writes what the node says, reads the
 * replies back into it, and enforces `REPLICATION_TIMEOUT` on every awaited reply with one
 * watchdog timer. Records leave strictly in LSN order because only this loop writes.
 *
 * A session's steps live beside it: the handshake in `link_handshake.ts`, the full sync and the
 * divergence report in `link_full_sync.ts`, the frames in `link_frames.ts`, the wire in
 * `link_connection.ts`; what they share is in `link_context.ts`.
 *
 * @module
 */
import { LogGapError } from "../storage/errors.ts";
import { recordsThrough } from "./log_records.ts";
import { type LinkContext, LinkPaused, type LinkSession, waitAllReplies } from "./link_context.ts";
import { LinkConnection, LinkError } from "./link_connection.ts";
import { FailureReport } from "./link_failures.ts";
import { LinkFrames } from "./link_frames.ts";
import { handshake } from "./link_handshake.ts";
import { reportDivergence, sendFullSync } from "./link_full_sync.ts";
import type { FullSyncDecision, ReplicaNode } from "./replica_node.ts";
import { recordAt } from "./source_records.ts";
import { pingRequest } from "./stream_protocol.ts";
import { Wakeup } from "./wakeup.ts";

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
  /** Frames are built here; the sender writes each one completely before the next is built. */
  readonly #frames: LinkFrames;
  readonly #failures: FailureReport;
  /** The current session (undefined between sessions). */
  #session: LinkSession | undefined;
  /** Wakes an idle sender when a ping falls due; armed at most once at a time. */
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  /** {@link retryNow} was called: the backoff in progress ends at once. */
  #retryNow = false;
  #running: Promise<void> | undefined;
  #warnedNoToken = false;
  /** The epoch of the record a sub-replica ahead of this forwarding replica holds at its LSN. */
  #aheadEpoch = 0;

  constructor(node: ReplicaNode, ctx: LinkContext) {
    this.node = node;
    this.#ctx = ctx;
    this.#frames = new LinkFrames(node);
    this.#failures = new FailureReport(ctx.log, ctx.nowMs);
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
    this.#session?.wire.fail(new LinkPaused(reason));
    this.#wakeup.notify();
  }

  /**
   * A session is open: connected, in the handshake or streaming. A replica whose handshake is
   * still running is "down" for every other purpose, but a graceful stop waits for it too.
   */
  get inSession(): boolean {
    return this.#session !== undefined;
  }

  /** Stops the loop and closes the connection. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#session?.wire.fail(new LinkError("the master is shutting down"));
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
        await this.#runSession();
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
        this.#failures.failed(this.node, reason, delayMs, outcome.becameUnhealthy);
        if (wasHealthy !== this.node.healthy) this.#ctx.onHealthChange(this.node);
      } finally {
        this.#endSession();
      }
    }
    this.#endSession();
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
    this.#session?.wire.close();
    this.#session = undefined;
  }

  async #runSession(): Promise<void> {
    const { node } = this;
    const { log } = this.#ctx;
    const conn = await this.#connect();
    if (this.#stopped) {
      conn.close();
      throw new LinkError("the master is shutting down");
    }
    const wire = new LinkConnection(conn, node, {
      nowMs: this.#ctx.nowMs,
      maxReplyBytes: this.#ctx.maxReplyBytes,
      onAck: () => this.#ctx.onAck(node),
      onRefused: (code, message) => this.#ctx.onRefused?.(node, code, message),
      wake: () => this.#wakeup.notify(),
    });
    const session: LinkSession = {
      node,
      ctx: this.#ctx,
      wire,
      wakeup: this.#wakeup,
      frames: this.#frames,
    };
    this.#session = session;
    const wasHealthy = node.healthy;
    const facts = await handshake(session, this.#ctx.authToken, () => this.#warnNoToken());
    const decision = node.onHandshake(facts, this.#ctx.nowMs());
    const { replicaLsn: lastLsn, replicaEpoch: lastEpoch } = facts;
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
      if (decision.diverged) await reportDivergence(session, lastLsn, lastEpoch);
      await sendFullSync(session);
    }
    this.#ctx.onAck(node);
    await this.#stream(session);
  }

  /** A replica without tokens accepts REPLICATE from anyone: said once per link. */
  #warnNoToken(): void {
    if (this.#warnedNoToken) return;
    this.#warnedNoToken = true;
    this.#ctx.log.warn(
      "replica {replica} has no token: it accepts REPLICATE from anyone who reaches it; " +
        "give it REPLICATION_TOKEN (or AUTH_TOKEN) too",
      { replica: this.node.address },
    );
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

  async #stream(session: LinkSession): Promise<void> {
    const { node, wire } = session;
    const notReady = this.#ctx.notReady;
    const chain = this.#ctx.chain;
    for (;;) {
      wire.throwIfFailed();
      if (notReady !== undefined) {
        const why = notReady();
        if (why !== undefined) throw new LinkPaused(why);
      }
      if (chain !== undefined && node.chainReportDue(this.#ctx.nowMs())) {
        node.onChainReported(this.#ctx.nowMs());
        await wire.send(pingRequest(node.durableLsn, chain()), "ping", 0);
        continue;
      }
      const next = node.nextSend();
      if (next.kind === "queue") {
        const last = next.batches[next.batches.length - 1].lastLsn;
        const records = next.batches.map((b) => b.records);
        await wire.send(session.frames.logFrame(records), "log", 0, last);
      } else if (next.kind === "log") {
        try {
          await this.#catchUp(session, next.afterLsn, next.uptoLsn);
        } catch (error) {
          if (!(error instanceof LogGapError)) throw error;
          await waitAllReplies(session);
          this.#logFullSync(node.onLogGap(error.message));
          await sendFullSync(session);
        }
      } else if (next.kind === "verify") {
        await this.#verify(session, next.lsn);
      } else if (node.pingDue(this.#ctx.nowMs())) {
        await wire.send(pingRequest(node.durableLsn), "ping", 0);
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
  async #verify(session: LinkSession, lsn: number): Promise<void> {
    const { node } = this;
    const record = await recordAt(this.#ctx.source, lsn, node);
    session.wire.throwIfFailed();
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
    await waitAllReplies(session);
    if (decision.diverged) await reportDivergence(session, lsn, this.#aheadEpoch);
    await sendFullSync(session);
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
  async #catchUp(session: LinkSession, afterLsn: number, uptoLsn: number): Promise<void> {
    const { wire, frames } = session;
    let sentLast = afterLsn;
    for await (const chunk of this.#ctx.source.readLogFrom(afterLsn, this.node.policy.batchBytes)) {
      wire.throwIfFailed();
      const { end, lastLsn: last } = recordsThrough(chunk, uptoLsn, sentLast);
      if (end > 0) {
        await this.#waitWindow(session);
        await wire.send(frames.logFrame([chunk.subarray(0, end)]), "log", 0, last);
        sentLast = last;
      }
      if (end < chunk.length || sentLast >= uptoLsn) break;
    }
    if (sentLast < uptoLsn) {
      throw new LinkError(`the log ended at LSN ${sentLast}, before the durable LSN ${uptoLsn}`);
    }
  }

  async #waitWindow({ wire }: LinkSession): Promise<void> {
    while (!this.node.windowOpen()) {
      wire.throwIfFailed();
      // A closed window means records are unacknowledged: the watchdog bounds the wait.
      await this.#wakeup.wait();
    }
    wire.throwIfFailed();
  }
}
