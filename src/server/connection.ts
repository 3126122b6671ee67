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
 * Memory: replies not yet sent are bounded like Redis's `client-output-buffer-limit`. Once
 * OUTPUT_BUFFER_SOFT_LIMIT_BYTES of them wait (a client that pipelines reads and does not read the
 * replies), the connection runs no more requests and reads nothing until they drain, so TCP pushes
 * back on the client; past OUTPUT_BUFFER_HARD_LIMIT_BYTES it is closed. The read buffer grows for
 * a large request up to MAX_REQUEST_BYTES, never further. Those, the parser's bookkeeping of a
 * large request still arriving and a MULTI queue are reported to the server (a growth before it
 * is allocated), which closes the connection holding the most when all of them together pass
 * MAX_CLIENT_MEMORY_BYTES.
 *
 * A command over many keys runs in steps (`CommandContext.inSteps`): the connection then runs and
 * reads nothing more until it finishes, and other connections are served between its steps.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import {
  CommandTable,
  type Framing,
  type Reply,
  type ReplyWriter,
  type Request,
  type RequestParser,
  scanFirstArguments,
} from "../protocol/mod.ts";
import { REQUEST_PATH_LIMITS } from "../config.ts";
import { newKeyBatch } from "../storage/mod.ts";
import {
  type Batch,
  deposedReplies,
  fillHoles,
  type Hole,
  type Observed,
  WriterPool,
} from "./batch_replies.ts";
import { answerParseError, failureReply, malformedRefusal } from "./command_errors.ts";
import { READ_ONLY_MESSAGE, REPLICATE_ON_MASTER_MESSAGE } from "./commands.ts";
import {
  type CommandContext,
  type CommandSpec,
  type ConnectionInfo,
  type ConnectionType,
  type ServerNode,
  type TransactionState,
} from "./hooks.ts";
import type { LimitLog } from "./limit_log.ts";
import { newRequestParser, ReadBuffer, requestBound } from "./read_buffer.ts";
import { writeAll } from "../write_all.ts";

export { errorReply } from "./command_errors.ts";

/**
 * Heap each argument of a request running in steps holds until it ends, beyond the read buffer
 * its bytes are in: its `Uint8Array` view (~100 bytes) and what the command keeps per key (an
 * MGET's held value: 16 bytes). Counted against MAX_CLIENT_MEMORY_BYTES while the request runs
 * (40 MGETs of 262,143 keys held ~420 MB of heap where ~85 MB was counted).
 */
const STEPPED_ARGUMENT_BYTES = 128;

/**
 * The keys {@link Connection} warms before a batch, one for every connection: it is filled and
 * used in one synchronous call.
 */
const warmedBatch = newKeyBatch(REQUEST_PATH_LIMITS.warmedLookups);
/** The requests whose first argument {@link Connection} warms. */
const WARMED_REQUESTS = {
  maxElements: REQUEST_PATH_LIMITS.warmedRequestElements,
  maxArgumentBytes: REQUEST_PATH_LIMITS.warmedKeyBytes,
};
const NO_BYTES = new Uint8Array(0);

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
  /** The connection must authenticate again (`RESET`). */
  connectionDeauthenticated(connection: Connection): void;
  /** True when an extension wants {@link answered} (metrics). */
  readonly observing: boolean;
  answered(names: readonly string[], elapsedSeconds: number): void;
  connectionClosed(connection: Connection): void;
  /** The peer closed its side while replies may still be pending (see ServerHooks.peerClosed). */
  peerClosed(connection: Connection): void;
  /**
   * The connection's memory ({@link Connection.memoryBytes}) changed by `deltaBytes`; the
   * server may close connections past MAX_CLIENT_MEMORY_BYTES.
   */
  memoryChanged(connection: Connection, deltaBytes: number): void;
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
  readonly local: string;
  readonly respOnly: boolean;
  authenticated: boolean;
  lastWriteLsn = 0;
  protocol: 2 | 3 = 2;
  name = "";
  libName = "";
  libVersion = "";
  readonly createdAtMs = Date.now();
  lastActiveMs = this.createdAtMs;
  lastCommand = "";
  transaction: TransactionState | undefined;
  #type: ConnectionType = "normal";
  readonly #conn: Deno.Conn;
  readonly #host: ConnectionHost;
  readonly #parser: RequestParser;
  /**
   * The command word last looked up and what it named: the parser hands back the same array for
   * a repeated word (a copy nobody writes to), so a pipeline of one command is looked up once per
   * word change, not hashed and compared per request. The server's commands are fixed once it
   * serves.
   */
  #lastName: Uint8Array | undefined;
  #lastCommand: NamedCommand | undefined;
  readonly #maxPipeline: number;
  readonly #initialBytes: number;
  readonly #softOutputBytes: number;
  readonly #hardOutputBytes: number;
  /** Reply bytes of batches run whose replies are not written yet. */
  #unsentBytes = 0;
  /** {@link memoryBytes} as last reported to the server. */
  #reportedBytes = 0;
  /** Closed and its memory given back: nothing more is reported. */
  #memoryReleased = false;
  /** What the reply of a request running in steps holds so far (see `stepDone`). */
  #stepBytes = 0;
  /** What the arguments of a request running in steps hold while it runs. */
  #stepArgumentBytes = 0;
  /** A request runs in steps now: a graceful stop waits for it. */
  #stepping = false;
  /** A request running in steps (see {@link CommandContext.inSteps}) with its error handling. */
  #steps: Promise<void> | undefined;
  /** The context handed to handlers; its framing is set per request. */
  readonly #context: CommandContext & { framing: Framing };
  readonly #input: ReadBuffer;
  readonly #writers: WriterPool;
  /** Requests run whose replies are not written yet. */
  #inFlight = 0;
  /** The write chain: each batch's replies are written after the previous batch's. */
  #tail: Promise<void> = Promise.resolve();
  /** Batches whose replies are not written yet (the chain is idle at 0). */
  #batchesWaiting = 0;
  /** Highest LSN written by the batch being run. */
  #batchLsn = 0;
  #holes: Hole[] | undefined;
  /** QUIT or a fatal protocol error: write what is pending, then close. */
  #closeAfterFlush = false;
  #stopping = false;
  #closed = false;
  #wakeReader: (() => void) | undefined;

  /**
   * `respOnly`: the connection came to the RESP-only listener, where a line that is not a RESP
   * array is a Redis inline command (not the text protocol) and every reply is RESP.
   */
  constructor(conn: Deno.Conn, id: number, host: ConnectionHost, respOnly = false) {
    this.#conn = conn;
    this.id = id;
    this.#host = host;
    this.respOnly = respOnly;
    const address = conn.remoteAddr as Deno.NetAddr;
    this.peer = `${address.hostname}:${address.port}`;
    const localAddress = conn.localAddr as Deno.NetAddr;
    this.local = `${localAddress.hostname}:${localAddress.port}`;
    const config = host.node.config;
    this.authenticated = !host.requiresAuthentication;
    const growing = (aboutToAllocate: number) => {
      this.#reportMemory(aboutToAllocate);
      return !this.#closed;
    };
    this.#parser = newRequestParser(config, this.authenticated, respOnly, growing);
    this.#maxPipeline = config.MAX_PIPELINE_REQUESTS;
    this.#initialBytes = config.CONNECTION_BUFFER_BYTES;
    this.#softOutputBytes = config.OUTPUT_BUFFER_SOFT_LIMIT_BYTES;
    this.#hardOutputBytes = config.OUTPUT_BUFFER_HARD_LIMIT_BYTES;
    this.#writers = new WriterPool(this.#initialBytes);
    this.#input = new ReadBuffer(
      this.#initialBytes,
      config.MAX_REQUEST_BYTES + this.#initialBytes,
      growing,
    );
    this.#context = {
      node: host.node,
      connection: this,
      framing: "text",
      stepMs: config.REQUEST_STEP_MS,
      wrote: (lsn: number) => {
        if (lsn > this.#batchLsn) this.#batchLsn = lsn;
        if (lsn > this.lastWriteLsn) this.lastWriteLsn = lsn;
      },
      replicated: (lsn: number) => host.awaitReplication(lsn),
      closeAfterReply: () => {
        this.#closeAfterFlush = true;
      },
      inSteps: (work: Promise<void>) => {
        this.#steps = work;
      },
      stepDone: (heldBytes: number) => {
        this.#stepBytes = heldBytes;
        this.#reportMemory();
        return !this.#closed;
      },
    };
  }

  /**
   * Memory this connection holds: read buffer and parser bookkeeping beyond their initial size,
   * unsent replies, a request's reply built in steps, a MULTI queue.
   */
  get memoryBytes(): number {
    return this.#input.extraBytes + this.#parser.extraBytes + this.#unsentBytes +
      this.#stepBytes + this.#stepArgumentBytes + (this.transaction?.heldBytes ?? 0);
  }

  /** Reply bytes not yet sent. */
  get unsentBytes(): number {
    return this.#unsentBytes;
  }

  get type(): ConnectionType {
    return this.#type;
  }

  get pendingInputBytes(): number {
    return this.#input.pendingBytes;
  }

  get inputBufferBytes(): number {
    return this.#input.bytes.length;
  }

  kill(): void {
    this.forceClose();
  }

  /** True once the connection is closed (or being closed). */
  get closed(): boolean {
    return this.#closed;
  }

  markAuthenticated(): void {
    if (this.authenticated) return;
    this.authenticated = true;
    const bound = requestBound(this.#host.node.config, true);
    this.#parser.setMaxRequestBytes(bound.bytes, bound.setting);
    this.#host.connectionAuthenticated(this);
  }

  /**
   * Redis's `RESET`: back to RESP2 and no name; on a node that requires authentication the
   * connection must authenticate again (its small request bound and deadline come back).
   */
  reset(): void {
    this.protocol = 2;
    this.name = "";
    this.transaction?.release();
    if (!this.#host.requiresAuthentication || !this.authenticated) return;
    this.authenticated = false;
    const bound = requestBound(this.#host.node.config, false);
    this.#parser.setMaxRequestBytes(bound.bytes, bound.setting);
    this.#host.connectionDeauthenticated(this);
  }

  /** Reads, runs and answers requests until the peer or the server closes the connection. */
  async serve(): Promise<void> {
    try {
      for (;;) {
        if (this.#stopping) break;
        const steps = this.#runBuffered();
        if (steps !== undefined) {
          // A request runs in steps over views of the buffer: nothing is read until it ends.
          this.#stepping = true;
          try {
            await steps;
          } finally {
            this.#stepping = false;
          }
          continue;
        }
        if (this.#closeAfterFlush) break;
        if (this.#inFlight >= this.#maxPipeline || this.#unsentBytes >= this.#softOutputBytes) {
          this.#pauseLogged();
          await new Promise<void>((resolve) => (this.#wakeReader = resolve));
          continue;
        }
        const input = this.#input;
        input.makeRoom();
        const count = await this.#conn.read(input.bytes.subarray(input.end));
        if (count === null) {
          // Nobody reads the replies still pending: waits only they need can end now.
          this.#host.peerClosed(this);
          break;
        }
        if (this.#stopping) break;
        input.end += count;
        this.#host.node.stats.netInputBytes += count;
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
      this.transaction?.release();
      // The read that was pending into it has failed by now: its pages can go.
      this.#input.release();
      this.#memoryReleased = true;
      if (this.#reportedBytes !== 0) this.#host.memoryChanged(this, -this.#reportedBytes);
      this.#reportedBytes = 0;
      this.#host.connectionClosed(this);
    }
  }

  /**
   * Closes the connection for the server, which counts what it held as given back now (it is,
   * as soon as the pending writes fail); returns those bytes.
   */
  evict(): number {
    const held = this.#reportedBytes;
    this.#memoryReleased = true;
    this.#reportedBytes = 0;
    this.forceClose();
    return held;
  }

  /**
   * Tells the server how {@link memoryBytes} changed since the last report; `aboutToAllocate`
   * bytes more are reported before they are allocated (the server may close this connection,
   * or others, first).
   */
  #reportMemory(aboutToAllocate = 0): void {
    if (this.#memoryReleased) return;
    const delta = this.memoryBytes + aboutToAllocate - this.#reportedBytes;
    if (delta === 0) return;
    this.#reportedBytes += delta;
    this.#host.memoryChanged(this, delta);
  }

  /** Logs (once a minute per bound) why the connection stopped reading. */
  #pauseLogged(): void {
    if (this.#inFlight >= this.#maxPipeline) {
      this.#host.limits.hit(
        "MAX_PIPELINE_REQUESTS",
        this.#maxPipeline,
        "connection {peer} has too many requests in flight; it stops reading until replies drain",
        { peer: this.peer },
      );
      return;
    }
    this.#host.limits.hit(
      "OUTPUT_BUFFER_SOFT_LIMIT_BYTES",
      this.#softOutputBytes,
      "connection {peer} has {unsentBytes} bytes of replies its client has not read; it runs no " +
        "more of its requests until they drain",
      { peer: this.peer, unsentBytes: this.#unsentBytes },
    );
  }

  /**
   * Graceful stop: read no more requests, finish the ones in flight (and one running in steps),
   * write their replies, close.
   */
  stop(): void {
    this.#stopping = true;
    // A request running in steps (or starting to) is not in flight yet: it finishes and is
    // answered first.
    if (this.#inFlight === 0 && !this.#stepping && this.#steps === undefined) this.#close();
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

  /**
   * Runs every complete request in the buffer (within the pipeline and output bounds) as one
   * batch. When a request runs in steps, the batch ends with it: the promise returned settles
   * once it finished and the batch is on its way.
   */
  #runBuffered(): Promise<void> | undefined {
    const input = this.#input;
    const data = input.bytes.subarray(0, input.end);
    let writer: ReplyWriter | undefined;
    let count = 0;
    const observed: Observed | undefined = this.#host.observing
      ? { names: [], startedMs: performance.now() }
      : undefined;
    this.#batchLsn = 0;
    this.#holes = undefined;
    let framing: Framing | "mixed" | undefined;
    /** The request of this batch before which the next look-ahead runs (-1: none). */
    let warmAt = this.authenticated ? 0 : -1;
    while (
      this.#inFlight + count < this.#maxPipeline && !this.#closeAfterFlush &&
      this.#unsentBytes + (writer === undefined ? 0 : writer.length) < this.#softOutputBytes
    ) {
      if (count === warmAt) warmAt = this.#warmLookups(data, input.start, count);
      const request = this.#parser.next(data, input.start);
      input.start = this.#parser.offset;
      if (request === undefined) break;
      writer ??= this.#writers.take();
      count++;
      if (framing !== request.framing) framing = framing === undefined ? request.framing : "mixed";
      this.#context.framing = request.framing;
      writer.resp = request.framing === "resp";
      writer.resp3 = writer.resp && this.protocol === 3;
      if (request.kind === "request") {
        const name = this.#run(request, writer);
        observed?.names.push(name);
        if (this.#steps !== undefined) break;
        continue;
      }
      observed?.names.push("?");
      if (answerParseError(request, writer, this.#host, this.peer)) this.#closeAfterFlush = true;
    }
    if (input.start === input.end) input.start = input.end = 0;
    if (writer === undefined) return undefined;
    this.lastActiveMs = Date.now();
    const steps = this.#steps;
    if (steps === undefined) {
      this.#finishBatch(writer, count, framing ?? "text", observed);
      return undefined;
    }
    this.#steps = undefined;
    const done = writer;
    return steps.then(() => {
      this.#stepBytes = 0; // now counted in the batch's unsent bytes
      this.#stepArgumentBytes = 0;
      this.#finishBatch(done, count, framing ?? "text", observed);
    });
  }

  /**
   * Warms the key lookups of the next complete RESP requests waiting in `data` from `start`
   * (`KVStore.warmLookups`), before request `count` of the batch runs, so that their waits for
   * main memory overlap instead of coming one request after another. Returns the request before
   * which to look ahead again (-1: not in this batch).
   */
  #warmLookups(data: Uint8Array, start: number, count: number): number {
    const store = this.#host.node.store;
    if (store.size < REQUEST_PATH_LIMITS.warmedFromKeys) return -1;
    const batch = warmedBatch;
    batch.count = scanFirstArguments(data, start, WARMED_REQUESTS, batch.starts, batch.ends);
    if (batch.count < 2) return -1; // one lookup has none to overlap with
    batch.bytes = data;
    store.warmLookups(batch);
    batch.bytes = NO_BYTES; // keeps no connection's buffer alive
    return count + batch.count;
  }

  /** Sends a batch that has run on its way: after its durability and late replies, in order. */
  #finishBatch(
    writer: ReplyWriter,
    count: number,
    framing: Framing | "mixed",
    observed: Observed | undefined,
  ): void {
    this.#inFlight += count;
    this.#host.node.stats.totalCommands += count;
    const lsn = this.#batchLsn;
    // Awaited in #complete, maybe after earlier batches: the store's promise is marked handled.
    const durable = lsn > 0 ? this.#host.node.store.whenDurable(lsn) : undefined;
    const holes = this.#holes;
    const outputBytes = writer.length;
    this.#unsentBytes += outputBytes;
    // Before any of it is written: past the hard bound nothing more is sent.
    if (this.#unsentBytes > this.#hardOutputBytes) this.#closeForOutput();
    this.#reportMemory();
    // With no earlier batch still waiting, start at once (no extra turn through the chain).
    const idle = this.#batchesWaiting === 0;
    this.#batchesWaiting++;
    const batch: Batch = { writer, count, framing, durable, holes, observed, outputBytes };
    this.#tail = idle ? this.#complete(batch) : this.#tail.then(() => this.#complete(batch));
  }

  /** Past OUTPUT_BUFFER_HARD_LIMIT_BYTES: the connection is closed, its replies dropped. */
  #closeForOutput(): void {
    this.#host.node.stats.closedForOutput++;
    this.#host.limits.hit(
      "OUTPUT_BUFFER_HARD_LIMIT_BYTES",
      this.#hardOutputBytes,
      "closed connection {peer}: {unsentBytes} bytes of replies not read by its client",
      { peer: this.peer, unsentBytes: this.#unsentBytes },
    );
    this.forceClose();
  }

  /** Runs one request; returns the command's name (`?` when there is no such command). */
  #run(request: Request, writer: ReplyWriter): string {
    let command = this.#lastCommand;
    if (request.name !== this.#lastName) {
      command = this.#lastCommand = this.#host.commands.get(request.name);
      this.#lastName = request.name;
    }
    const refusal = this.#refusal(command, request, writer.resp);
    const transaction = this.transaction;
    if (refusal !== undefined) {
      // Between MULTI and EXEC a refused command makes EXEC abort, as in Redis.
      if (transaction?.queuing) transaction.refused();
      writer.reply(command?.refused?.(refusal, this.#context) ?? refusal);
    } else if (command !== undefined) {
      if (transaction?.queuing && !command.transactionControl) {
        transaction.queue(command.name, command, request.args, writer);
        // Queued arguments count against MAX_CLIENT_MEMORY_BYTES at once.
        this.#reportMemory();
      } else this.#execute(command, request.args, writer);
    }
    return command?.name ?? "?";
  }

  /**
   * Why `command` (what `request` names) may not run: unknown, a wrong number of arguments,
   * refused by a gate or by the node's role; undefined when it may.
   */
  #refusal(
    command: NamedCommand | undefined,
    request: Request,
    resp: boolean,
  ): Reply | undefined {
    const malformed = malformedRefusal(command, request, resp);
    if (malformed !== undefined || command === undefined) return malformed;
    const refusal = this.#host.authorize(command.name, this, command);
    if (refusal !== undefined) return refusal;
    this.lastCommand = command.name;
    const node = this.#host.node;
    if (command.write && node.replica) {
      return { type: "error", message: READ_ONLY_MESSAGE, code: "READONLY" };
    }
    if (command.replicaOnly && !node.replica) {
      return { type: "error", message: REPLICATE_ON_MASTER_MESSAGE };
    }
    return undefined;
  }

  /** Runs an admitted command: its reply now, later (a hole), or in steps. */
  #execute(command: NamedCommand, args: Uint8Array[], writer: ReplyWriter): void {
    // A connection that sends REPLICATE is a master's stream (CLIENT LIST's flags=M).
    if (command.admin && command.name === "REPLICATE") this.#type = "master";
    const mark = writer.length;
    try {
      const later = command.handler(args, writer, this.#context);
      const steps = this.#steps;
      if (steps !== undefined) {
        // Its arguments (a view each) and what it keeps per argument live until it ends.
        this.#stepArgumentBytes = args.length * STEPPED_ARGUMENT_BYTES;
        this.#reportMemory();
        const name = command.name;
        const resp = writer.resp;
        const resp3 = writer.resp3;
        this.#steps = steps.catch((error) => {
          writer.length = mark;
          writer.resp = resp;
          writer.resp3 = resp3;
          writer.reply(failureReply(this.#host.limits, name, this.peer, error));
        });
      }
      if (later !== undefined) {
        this.#holes ??= [];
        const name = command.name;
        this.#holes.push({
          offset: writer.length,
          resp: writer.resp,
          resp3: writer.resp3,
          reply: later.catch((error) => failureReply(this.#host.limits, name, this.peer, error)),
        });
      }
    } catch (error) {
      writer.length = mark;
      writer.reply(failureReply(this.#host.limits, command.name, this.peer, error));
    }
  }

  /**
   * Waits for the batch's durability and late replies, then writes all its replies at once. A
   * batch with writes whose replies are still here when the node learns it was deposed gets an
   * error for every request instead (see `deposedReplies`).
   */
  async #complete(batch: Batch): Promise<void> {
    const { writer, count, durable, holes, observed } = batch;
    let output = writer;
    try {
      if (this.#closed) return;
      if (durable !== undefined) await durable;
      if (holes !== undefined) output = await fillHoles(writer, holes, this.#writers);
      const deposed = durable === undefined ? undefined : this.#host.node.deposed;
      if (deposed !== undefined) {
        if (output !== writer) this.#writers.release(output);
        output = writer;
        output = deposedReplies(batch, deposed, this.#writers);
      }
      const bytes = output.bytes;
      this.#host.node.stats.netOutputBytes += bytes.length;
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
      if (output !== writer) this.#writers.release(output);
      this.#writers.release(writer);
      this.#inFlight -= count;
      this.#unsentBytes -= batch.outputBytes;
      this.#reportMemory();
      if (this.#inFlight < this.#maxPipeline && this.#unsentBytes < this.#softOutputBytes) {
        this.#wake();
      }
      if (this.#stopping && this.#inFlight === 0) this.#close();
    }
  }
}
