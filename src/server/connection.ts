/**
 * One client connection: read into a reused buffer, parse every complete request that arrived,
 * run each, and send all their replies with one write once the writes among them are durable.
 *
 * Pipelining: while the replies of one read wait for durability (or for replicas, in sync mode),
 * the connection goes on reading and running the next requests; replies always leave in request
 * order. At most MAX_PIPELINE_REQUESTS requests are in flight (run, reply not yet written); past
 * that the connection stops parsing and reading until replies drain. An idle connection waits in
 * one pending `read` and costs no CPU.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import {
  CommandTable,
  describeCommandName,
  type Framing,
  type Reply,
  ReplyWriter,
  type Request,
  RequestParser,
} from "../protocol/mod.ts";
import { StorageError } from "../storage/mod.ts";
import { READ_ONLY_MESSAGE, REPLICATE_ON_MASTER_MESSAGE } from "./commands.ts";
import {
  type CommandContext,
  CommandError,
  type CommandSpec,
  type ConnectionInfo,
  type ServerNode,
} from "./hooks.ts";
import type { LimitLog } from "./limit_log.ts";
import { writeAll } from "../write_all.ts";

/** A command with its upper-case name. */
export interface NamedCommand extends CommandSpec {
  name: string;
}

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly node: ServerNode;
  readonly commands: CommandTable<NamedCommand>;
  readonly log: Logger;
  readonly limits: LimitLog;
  awaitReplication(lsn: number): Promise<string | undefined> | undefined;
  authorize(name: string, connection: ConnectionInfo, spec: CommandSpec): Reply | undefined;
  /** True when connections start unauthenticated (an extension requires authentication). */
  readonly requiresAuthentication: boolean;
  /** The connection proved a credential. */
  connectionAuthenticated(connection: Connection): void;
  /** True when an extension wants {@link answered} (metrics). */
  readonly observing: boolean;
  answered(names: readonly string[], elapsedSeconds: number): void;
  connectionClosed(connection: Connection): void;
}

/** Command names of one batch and when it was read, for {@link ConnectionHost.answered}. */
interface Observed {
  names: string[];
  startedMs: number;
}

/** The requests one read delivered, run, whose replies are written together. */
interface Batch {
  writer: ReplyWriter;
  count: number;
  /** The framing of every request, or `mixed`. */
  framing: Framing | "mixed";
  /** Resolves when the batch's writes are durable (undefined: it wrote nothing). */
  durable: Promise<void> | undefined;
  holes: Hole[] | undefined;
  observed: Observed | undefined;
}

/** A reply that is computed later, and where it goes in the batch's output. */
interface Hole {
  offset: number;
  resp: boolean;
  reply: Promise<Reply>;
}

/** A buffer that grew past this many times its initial size shrinks back once emptied. */
const SHRINK_FACTOR = 8;
/**
 * Reply buffers kept for reuse: a batch with late replies (sync replication) needs two, the
 * batch's and the one its late replies are merged into; a new one costs a CONNECTION_BUFFER_BYTES
 * allocation. More batches in flight at once allocate and let theirs go.
 */
const SPARE_WRITERS = 2;

/** Errors that are the request's fault (or the store's refusal): answered, not logged. */
function isRequestError(error: unknown): error is CommandError | StorageError {
  return error instanceof CommandError || error instanceof StorageError;
}

function errorReply(error: unknown): Reply {
  return {
    type: "error",
    message: describeError(error),
    code: error instanceof CommandError ? error.code : undefined,
  };
}

function describeError(error: unknown): string {
  if (isRequestError(error)) return error.message;
  return `Internal error: ${error instanceof Error ? error.message : String(error)}`;
}

function isDisconnect(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.NotConnected ||
    // A TLS client that closes without close_notify (Deno's own clients do) just left.
    error instanceof Deno.errors.UnexpectedEof;
}

/** Serves one accepted connection until it closes. */
export class Connection implements ConnectionInfo {
  readonly id: number;
  readonly peer: string;
  readonly state = new Map<string, unknown>();
  authenticated: boolean;
  readonly #conn: Deno.Conn;
  readonly #host: ConnectionHost;
  readonly #parser: RequestParser;
  readonly #maxPipeline: number;
  readonly #initialBytes: number;
  /** The context handed to handlers; its framing is set per request. */
  readonly #context: CommandContext & { framing: Framing };
  #buffer: Uint8Array;
  #start = 0;
  #end = 0;
  /** Requests run whose replies are not written yet. */
  #inFlight = 0;
  /** The write chain: each batch's replies are written after the previous batch's. */
  #tail: Promise<void> = Promise.resolve();
  /** Batches whose replies are not written yet (the chain is idle at 0). */
  #batchesWaiting = 0;
  readonly #spareWriters: ReplyWriter[] = [];
  /** Highest LSN written by the batch being run. */
  #batchLsn = 0;
  #holes: Hole[] | undefined;
  /** QUIT or a fatal protocol error: write what is pending, then close. */
  #closeAfterFlush = false;
  #stopping = false;
  #closed = false;
  #wakeReader: (() => void) | undefined;

  constructor(conn: Deno.Conn, id: number, host: ConnectionHost) {
    this.#conn = conn;
    this.id = id;
    this.#host = host;
    const address = conn.remoteAddr as Deno.NetAddr;
    this.peer = `${address.hostname}:${address.port}`;
    const config = host.node.config;
    this.authenticated = !host.requiresAuthentication;
    this.#parser = this.authenticated
      ? new RequestParser({ maxRequestBytes: config.MAX_REQUEST_BYTES })
      : new RequestParser({
        maxRequestBytes: Math.min(
          config.MAX_UNAUTHENTICATED_REQUEST_BYTES,
          config.MAX_REQUEST_BYTES,
        ),
        requestLimit: "MAX_UNAUTHENTICATED_REQUEST_BYTES",
      });
    this.#maxPipeline = config.MAX_PIPELINE_REQUESTS;
    this.#initialBytes = config.CONNECTION_BUFFER_BYTES;
    this.#buffer = new Uint8Array(this.#initialBytes);
    this.#context = {
      node: host.node,
      connection: this,
      framing: "text",
      wrote: (lsn: number) => {
        if (lsn > this.#batchLsn) this.#batchLsn = lsn;
      },
      replicated: (lsn: number) => host.awaitReplication(lsn),
      closeAfterReply: () => {
        this.#closeAfterFlush = true;
      },
    };
  }

  markAuthenticated(): void {
    if (this.authenticated) return;
    this.authenticated = true;
    this.#parser.setMaxRequestBytes(this.#host.node.config.MAX_REQUEST_BYTES, "MAX_REQUEST_BYTES");
    this.#host.connectionAuthenticated(this);
  }

  /** Reads, runs and answers requests until the peer or the server closes the connection. */
  async serve(): Promise<void> {
    try {
      for (;;) {
        if (this.#stopping) break;
        this.#runBuffered();
        if (this.#closeAfterFlush) break;
        if (this.#inFlight >= this.#maxPipeline) {
          this.#host.limits.hit(
            "MAX_PIPELINE_REQUESTS",
            this.#maxPipeline,
            "connection {peer} has too many requests in flight; it stops reading until replies drain",
            { peer: this.peer },
          );
          await new Promise<void>((resolve) => (this.#wakeReader = resolve));
          continue;
        }
        this.#makeRoom();
        const count = await this.#conn.read(this.#buffer.subarray(this.#end));
        if (count === null || this.#stopping) break;
        this.#end += count;
      }
      await this.#tail;
    } catch (error) {
      if (!this.#closed && !isDisconnect(error)) {
        this.#host.log.warn("connection {peer} failed: {error}", {
          peer: this.peer,
          error: String(error),
        });
      }
    } finally {
      this.#close();
      this.#host.connectionClosed(this);
    }
  }

  /**
   * Graceful stop: read no more requests, finish the ones in flight, write their replies, close.
   */
  stop(): void {
    this.#stopping = true;
    if (this.#inFlight === 0) this.#close();
    this.#wake();
  }

  /** Closes now, whatever is in flight. */
  forceClose(): void {
    this.#stopping = true;
    this.#close();
    this.#wake();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or by a failed write.
    }
  }

  #wake(): void {
    const wake = this.#wakeReader;
    this.#wakeReader = undefined;
    wake?.();
  }

  /** Makes room to read into: reuses the buffer, compacts it, or grows it for a large request. */
  #makeRoom(): void {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
      if (this.#buffer.length > this.#initialBytes * SHRINK_FACTOR) {
        this.#buffer = new Uint8Array(this.#initialBytes);
      }
      return;
    }
    const minimumRead = this.#initialBytes / 2;
    if (this.#buffer.length - this.#end >= minimumRead) return;
    const pending = this.#end - this.#start;
    if (pending + minimumRead <= this.#buffer.length) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = new Uint8Array(Math.max(this.#buffer.length * 2, pending + minimumRead));
      grown.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = grown;
    }
    this.#start = 0;
    this.#end = pending;
  }

  /** Runs every complete request in the buffer (within the pipeline bound) as one batch. */
  #runBuffered(): void {
    const data = this.#buffer.subarray(0, this.#end);
    let writer: ReplyWriter | undefined;
    let count = 0;
    const observed: Observed | undefined = this.#host.observing
      ? { names: [], startedMs: performance.now() }
      : undefined;
    this.#batchLsn = 0;
    this.#holes = undefined;
    let framing: Framing | "mixed" | undefined;
    while (this.#inFlight + count < this.#maxPipeline && !this.#closeAfterFlush) {
      const request = this.#parser.next(data, this.#start);
      this.#start = this.#parser.offset;
      if (request === undefined) break;
      writer ??= this.#takeWriter();
      count++;
      if (framing !== request.framing) framing = framing === undefined ? request.framing : "mixed";
      this.#context.framing = request.framing;
      writer.resp = request.framing === "resp";
      if (request.kind === "request") {
        const name = this.#run(request, writer);
        observed?.names.push(name);
        continue;
      }
      observed?.names.push("?");
      writer.error(request.message);
      if (request.limit !== undefined) {
        this.#host.limits.hit(
          request.limit,
          this.#host.node.config[request.limit],
          "connection {peer} sent a request that is too large; it was skipped",
          { peer: this.peer },
        );
      }
      if (request.fatal) {
        this.#host.log.info("closing connection {peer}: {error}", {
          peer: this.peer,
          error: request.message,
        });
        this.#closeAfterFlush = true;
      }
    }
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (writer === undefined) return;
    this.#inFlight += count;
    this.#host.node.stats.totalCommands += count;
    const lsn = this.#batchLsn;
    // Awaited in #complete, maybe after earlier batches: the store's promise is marked handled.
    const durable = lsn > 0 ? this.#host.node.store.whenDurable(lsn) : undefined;
    const holes = this.#holes;
    // With no earlier batch still waiting, start at once (no extra turn through the chain).
    const idle = this.#batchesWaiting === 0;
    this.#batchesWaiting++;
    const batch: Batch = { writer, count, framing: framing ?? "text", durable, holes, observed };
    this.#tail = idle ? this.#complete(batch) : this.#tail.then(() => this.#complete(batch));
  }

  /** Runs one request; returns the command's name (`?` when there is no such command). */
  #run(request: Request, writer: ReplyWriter): string {
    const command = this.#host.commands.get(request.name);
    if (command === undefined) {
      writer.error(
        request.name.length === 0
          ? "Empty command line"
          : `Unknown command: ${describeCommandName(request.name)}`,
      );
      return "?";
    }
    const argCount = request.args.length;
    if (argCount < command.minArgs || argCount > command.maxArgs) {
      writer.error(`wrong number of arguments for '${command.name}'`);
      return command.name;
    }
    const refusal = this.#host.authorize(command.name, this, command);
    if (refusal !== undefined) {
      writer.reply(refusal);
      return command.name;
    }
    const node = this.#host.node;
    if (command.write && node.replica) {
      writer.error(READ_ONLY_MESSAGE, "READONLY");
      return command.name;
    }
    if (command.replicaOnly && !node.replica) {
      writer.error(REPLICATE_ON_MASTER_MESSAGE);
      return command.name;
    }
    const mark = writer.length;
    try {
      const later = command.handler(request.args, writer, this.#context);
      if (later !== undefined) {
        this.#holes ??= [];
        const name = command.name;
        this.#holes.push({
          offset: writer.length,
          resp: writer.resp,
          reply: later.catch((error) => this.#failed(name, error)),
        });
      }
    } catch (error) {
      writer.length = mark;
      writer.reply(this.#failed(command.name, error));
    }
    return command.name;
  }

  /**
   * The reply to a command that threw (or rejected) `error`. A bad request is answered, and
   * logged only when it asks to be (once a minute per kind); anything else is an internal error,
   * logged with its stack once a minute (a peer that can trigger one must not flood the log).
   */
  #failed(command: string, error: unknown): Reply {
    if (error instanceof CommandError && error.report !== undefined) {
      this.#host.limits.note(
        error.report,
        "warning",
        "refused {command} from {peer}: {error}",
        { command, peer: this.peer, error: error.message },
      );
    } else if (!isRequestError(error)) {
      this.#host.limits.note(
        "internal_error",
        "error",
        "command {command} from {peer} failed: {error}",
        {
          command,
          peer: this.peer,
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        },
      );
    }
    return errorReply(error);
  }

  /**
   * Waits for the batch's durability and late replies, then writes all its replies at once. A
   * batch with writes whose replies are still here when the node learns it was deposed gets an
   * error for every request instead (see {@link #deposedReplies}).
   */
  async #complete(batch: Batch): Promise<void> {
    const { writer, count, durable, holes, observed } = batch;
    let output = writer;
    try {
      if (this.#closed) return;
      if (durable !== undefined) await durable;
      if (holes !== undefined) output = await this.#fillHoles(writer, holes);
      const deposed = durable === undefined ? undefined : this.#host.node.deposed;
      if (deposed !== undefined) {
        if (output !== writer) this.#releaseWriter(output);
        output = writer;
        output = this.#deposedReplies(batch, deposed);
      }
      const bytes = output.bytes;
      // Almost always one write takes all of it: no async frame or subarray for that one.
      const written = await this.#conn.write(bytes);
      if (written < bytes.length) await writeAll(this.#conn, bytes.subarray(written));
      if (observed !== undefined) {
        this.#host.answered(observed.names, (performance.now() - observed.startedMs) / 1000);
      }
    } catch (error) {
      if (!this.#closed && !isDisconnect(error)) {
        // The log failed: the writes of this batch are not durable, so no OK may be sent. The
        // client learns the outcome is unknown from the closed connection.
        this.#host.log.error("closing connection {peer} without replies: {error}", {
          peer: this.peer,
          error: String(error),
        });
      }
      this.#close();
    } finally {
      this.#batchesWaiting--;
      if (output !== writer) this.#releaseWriter(output);
      this.#releaseWriter(writer);
      this.#inFlight -= count;
      if (this.#inFlight < this.#maxPipeline) this.#wake();
      if (this.#stopping && this.#inFlight === 0) this.#close();
    }
  }

  /**
   * The replies of a batch with writes on a node that was deposed before they were sent: its
   * writes are applied here, but the new master may not have them, so none may be answered OK.
   * Every request of the batch (reads too: the batch's replies are one unit) gets an error that
   * says so. A batch that mixed both framings cannot be answered request by request here: the
   * connection closes without replies (the outcome is unknown, never falsely OK).
   */
  #deposedReplies(batch: Batch, reason: string): ReplyWriter {
    if (batch.framing === "mixed") {
      throw new Error(`the node was deposed (${reason}) before this batch's replies were sent`);
    }
    const output = this.#takeWriter();
    output.resp = batch.framing === "resp";
    for (let i = 0; i < batch.count; i++) {
      output.error(
        `this node was deposed (${reason}) before this reply was sent: the writes of this ` +
          `batch are applied here but not acknowledged and may be lost; send writes to the new ` +
          `master`,
        "DEPOSED",
      );
    }
    return output;
  }

  async #fillHoles(writer: ReplyWriter, holes: Hole[]): Promise<ReplyWriter> {
    // One late reply (a sync-mode write on its own) needs no Promise.all and no array of them.
    const replies = holes.length === 1
      ? [await holes[0].reply]
      : await Promise.all(holes.map((hole) => hole.reply));
    const output = this.#takeWriter();
    const bytes = writer.bytes;
    let from = 0;
    for (let i = 0; i < holes.length; i++) {
      output.raw(bytes.subarray(from, holes[i].offset));
      output.resp = holes[i].resp;
      output.reply(replies[i]);
      from = holes[i].offset;
    }
    output.raw(bytes.subarray(from));
    return output;
  }

  #takeWriter(): ReplyWriter {
    return this.#spareWriters.pop() ?? new ReplyWriter(this.#initialBytes);
  }

  #releaseWriter(writer: ReplyWriter): void {
    if (this.#spareWriters.length >= SPARE_WRITERS) return;
    writer.reset(this.#initialBytes * SHRINK_FACTOR);
    this.#spareWriters.push(writer);
  }
}
