/**
 * One connection of a master's link to a replica, the wire side: it writes requests, reads the
 * replica's replies in order (one reader, pipelined), hands each to the {@link ReplicaNode}
 * (acknowledged LSNs, health), fails the connection on an error reply, a malformed or
 * oversized reply, a reset, or no reply within `REPLICATION_TIMEOUT` (one watchdog timer), and
 * wakes the sender when something changed. `ReplicaLink` opens one per session and decides
 * what to send.
 *
 * @module
 */
import { isChallengeOff } from "../protocol/challenge.ts";
import { INCOMPLETE, RespErrorReply, RespReplyParser, type RespValue } from "../protocol/resp.ts";
import { writeAll } from "../write_all.ts";
import type { ReplicaNode } from "./replica_node.ts";
import { describeReply, expectInteger } from "./stream_protocol.ts";

/** A replica failed in a way that a reconnect may fix. */
export class LinkError extends Error {
  override name = "LinkError";
}

export type Expected =
  | "auth"
  | "format"
  | "hello"
  | "compress"
  | "filter"
  | "diverged"
  | "log"
  | "ping"
  | "snapshot"
  | "chunk";

interface Waiter {
  kind: Expected;
  /** Snapshot pairs of a CHUNK request (0 otherwise). */
  pairs: number;
  resolve(reply: RespValue): void;
  reject(error: Error): void;
}

/** The settle callbacks of a request whose reply nobody awaits. */
function ignore(): void {}

/** What a connection tells its link. */
export interface LinkConnectionContext {
  nowMs(): number;
  /** Largest reply accepted from a replica (`MAX_REQUEST_BYTES`: the bound on what a peer sends). */
  maxReplyBytes: number;
  /** The replica acknowledged more records. */
  onAck(): void;
  /** The replica answered a request with an error (e.g. `STALEEPOCH`: a newer master exists). */
  onRefused?(code: string, message: string): void;
  /** Something changed (a reply, a failure): the sender should look again. */
  wake(): void;
}

/** One connection to a replica; see the module comment. */
export class LinkConnection {
  readonly #node: ReplicaNode;
  readonly #ctx: LinkConnectionContext;
  #conn: Deno.Conn | undefined;
  #failure: Error | undefined;
  #waiters: Waiter[] = [];
  #watchdog: ReturnType<typeof setTimeout> | undefined;

  /** Starts reading `conn`'s replies at once. */
  constructor(conn: Deno.Conn, node: ReplicaNode, ctx: LinkConnectionContext) {
    this.#conn = conn;
    this.#node = node;
    this.#ctx = ctx;
    this.#readLoop(conn);
  }

  /**
   * Writes a request whose reply is handled by the reader (LOG, PING, CHUNK). Not async, and its
   * waiter has no callbacks of its own: it runs once per replicated frame.
   */
  send(bytes: Uint8Array, kind: Expected, pairs: number, lastLsn?: number): Promise<void> {
    this.throwIfFailed();
    this.#waiters.push({ kind, pairs, resolve: ignore, reject: ignore });
    this.#node.onSent(this.#ctx.nowMs(), lastLsn, pairs);
    this.#armWatchdog();
    return this.#write(bytes);
  }

  /** Writes a request and waits for its reply. */
  async request(bytes: Uint8Array, kind: Expected): Promise<RespValue> {
    this.throwIfFailed();
    const reply = new Promise<RespValue>((resolve, reject) => {
      this.#waiters.push({ kind, pairs: 0, resolve, reject });
    });
    reply.catch(() => {}); // a failed write rejects it too; the failure is thrown below
    this.#node.onSent(this.#ctx.nowMs());
    this.#armWatchdog();
    await this.#write(bytes);
    return await reply;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    const conn = this.#conn;
    if (conn === undefined) throw this.#failure ?? new LinkError("not connected");
    try {
      // Almost always one write takes all of it: no async frame or subarray for that one.
      const written = await conn.write(bytes);
      if (written < bytes.length) await writeAll(conn, bytes.subarray(written));
    } catch (error) {
      this.fail(
        new LinkError(`send failed: ${error instanceof Error ? error.message : String(error)}`),
      );
      throw this.#failure;
    }
  }

  async #readLoop(conn: Deno.Conn): Promise<void> {
    let buffer = new Uint8Array(64 * 1024);
    let end = 0;
    const parser = new RespReplyParser({
      maxBulkBytes: this.#ctx.maxReplyBytes,
      maxArrayElements: 16,
    });
    try {
      for (;;) {
        if (end === buffer.length) {
          if (buffer.length >= this.#ctx.maxReplyBytes) {
            throw new LinkError(`reply larger than ${this.#ctx.maxReplyBytes} bytes`);
          }
          const bigger = new Uint8Array(buffer.length * 2);
          bigger.set(buffer);
          buffer = bigger;
        }
        const n = await conn.read(buffer.subarray(end));
        if (n === null) throw new LinkError("replica closed the connection");
        end += n;
        const data = buffer.subarray(0, end);
        let start = 0;
        for (;;) {
          const reply = parser.next(data, start);
          start = parser.offset; // complete elements are consumed even when INCOMPLETE
          if (reply === INCOMPLETE) break;
          this.#onReply(reply);
        }
        buffer.copyWithin(0, start, end);
        end -= start;
      }
    } catch (error) {
      if (this.#conn !== conn) return; // this connection was already dropped
      this.fail(
        error instanceof LinkError ? error : new LinkError(
          `connection failed: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
    }
  }

  #onReply(reply: RespValue): void {
    const waiter = this.#waiters.shift();
    if (waiter === undefined) {
      throw new LinkError(`unexpected reply from the replica: ${describeReply(reply)}`);
    }
    // Tolerated errors: AUTH to a replica without tokens, a DIVERGED report it ignores, FORMAT
    // to a replica from before it, which does not know the word (the link refuses it), and a
    // COMPRESS offer or FILTER of a replica from before them (the link decides what that means).
    const tolerated = reply instanceof RespErrorReply &&
      ((waiter.kind === "auth" && isChallengeOff(reply.message)) || waiter.kind === "diverged" ||
        (waiter.kind === "format" && /unknown REPLICATE subcommand/i.test(reply.message)) ||
        ((waiter.kind === "compress" || waiter.kind === "filter") && reply.code !== "STALEEPOCH"));
    if (reply instanceof RespErrorReply && !tolerated) {
      this.#ctx.onRefused?.(reply.code, reply.message);
      const error = new LinkError(
        waiter.kind === "auth"
          ? `replica refused the replication token: ${reply.code} ${reply.message} (is its ` +
            `REPLICATION_TOKEN, or AUTH_TOKEN, the same as this master's?)`
          : `replica refused ${waiter.kind.toUpperCase()}: ${reply.code} ${reply.message}`,
      );
      // The waiter is already off the list: settle it here, or a session awaiting this
      // reply (HELLO, SNAPSHOT) would wait forever once the connection is dropped.
      waiter.reject(error);
      throw error;
    }
    const now = this.#ctx.nowMs();
    if (waiter.kind === "log" || waiter.kind === "ping") {
      const lsn = expectInteger(reply, waiter.kind.toUpperCase());
      const newly = this.#node.onReply(now, lsn);
      if (newly > 0) this.#ctx.onAck();
    } else if (waiter.kind === "auth" || waiter.kind === "format") {
      // Handshake steps before HELLO: the link is not working yet (HELLO's reply says so).
      this.#node.onAuthReply(now);
    } else {
      this.#node.onReply(now, undefined, waiter.pairs);
    }
    this.#armWatchdog();
    waiter.resolve(reply);
    this.#ctx.wake();
  }

  #armWatchdog(): void {
    if (this.#watchdog !== undefined) return;
    const deadline = this.#node.replyDeadlineMs();
    if (deadline === undefined) return;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      if (this.#node.replyOverdue(this.#ctx.nowMs())) {
        this.fail(
          new LinkError(
            `no reply within REPLICATION_TIMEOUT ${this.#node.policy.timeoutMs / 1000} s`,
          ),
        );
      } else {
        this.#armWatchdog();
      }
    }, Math.max(1, deadline - this.#ctx.nowMs()));
  }

  /** Throws the failure that ended this connection, if it ended. */
  throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Ends this connection with `error` (the first failure wins) and wakes the sender. */
  fail(error: Error): void {
    this.#failure ??= error;
    this.#closeConnection();
    this.#ctx.wake();
  }

  /** Closes it (the session is over); requests still waiting fail. */
  close(): void {
    this.#closeConnection();
  }

  #closeConnection(): void {
    if (this.#watchdog !== undefined) {
      clearTimeout(this.#watchdog);
      this.#watchdog = undefined;
    }
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) {
      try {
        conn.close();
      } catch {
        // already closed by the peer
      }
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    const failure = this.#failure ?? new LinkError("connection closed");
    for (const waiter of waiters) waiter.reject(failure);
  }
}
