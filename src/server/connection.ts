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
 * a large request up to MAX_REQUEST_BYTES, never further. Both are reported to the server, which
 * closes the connection holding the most when all of them together pass MAX_CLIENT_MEMORY_BYTES.
 *
 * A command over many keys runs in steps (`CommandContext.inSteps`): the connection then runs and
 * reads nothing more until it finishes, and other connections are served between its steps.
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
  unknownCommandMessage,
  wrongArityMessage,
} from "../protocol/mod.ts";
import { StorageError } from "../storage/mod.ts";
import { READ_ONLY_MESSAGE, REPLICATE_ON_MASTER_MESSAGE } from "./commands.ts";
import {
  type CommandContext,
  CommandError,
  type CommandSpec,
  type ConnectionInfo,
  type ConnectionType,
  type ServerNode,
  type TransactionState,
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
  /** The connection must authenticate again (`RESET`). */
  connectionDeauthenticated(connection: Connection): void;
  /** True when an extension wants {@link answered} (metrics). */
  readonly observing: boolean;
  answered(names: readonly string[], elapsedSeconds: number): void;
  connectionClosed(connection: Connection): void;
  /** The peer closed its side while replies may still be pending (see ServerHooks.peerClosed). */
  peerClosed(connection: Connection): void;
  /**
   * The connection's memory (read buffer beyond its initial size, plus replies not yet sent)
   * changed by `deltaBytes`; the server may close connections past MAX_CLIENT_MEMORY_BYTES.
   */
  memoryChanged(connection: Connection, deltaBytes: number): void;
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
  /** Reply bytes counted as not yet sent for this batch. */
  outputBytes: number;
}

/** A reply that is computed later, and where it goes in the batch's output. */
interface Hole {
  offset: number;
  resp: boolean;
  resp3: boolean;
  reply: Promise<Reply>;
}

/**
 * A buffer that grew past this many times its initial size shrinks back once emptied; beyond it,
 * the read buffer is a resizable one.
 */
const SHRINK_FACTOR = 8;
/**
 * A resizable read buffer reserves (address space, not memory) this many times its size, so it
 * grows in place for the next doublings; past that it moves once to a larger reservation.
 */
const GROWABLE_RESERVE_FACTOR = 4;
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

/** The reply to a request that failed with `error` (a bad request's message, or an internal error). */
export function errorReply(error: unknown): Reply {
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
  readonly #maxPipeline: number;
  readonly #initialBytes: number;
  readonly #softOutputBytes: number;
  readonly #hardOutputBytes: number;
  /** The read buffer never grows past this (a request larger than MAX_REQUEST_BYTES is skipped). */
  readonly #maxBufferBytes: number;
  /** Reply bytes of batches run whose replies are not written yet. */
  #unsentBytes = 0;
  /** {@link memoryBytes} as last reported to the server. */
  #reportedBytes = 0;
  /** Closed and its memory given back: nothing more is reported. */
  #memoryReleased = false;
  /** The read buffer's memory while it is grown past SHRINK_FACTOR times its initial size. */
  #growable: ArrayBuffer | undefined;
  /** What the reply of a request running in steps holds so far (see `stepDone`). */
  #stepBytes = 0;
  /** A request running in steps (see {@link CommandContext.inSteps}) with its error handling. */
  #steps: Promise<void> | undefined;
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
    const maxRequestElements = config.MAX_REQUEST_ELEMENTS;
    const inline = { inline: respOnly, maxInlineBytes: config.MAX_INLINE_REQUEST_BYTES };
    this.#parser = this.authenticated
      ? new RequestParser({
        maxRequestBytes: config.MAX_REQUEST_BYTES,
        maxRequestElements,
        ...inline,
      })
      : new RequestParser({
        maxRequestBytes: Math.min(
          config.MAX_UNAUTHENTICATED_REQUEST_BYTES,
          config.MAX_REQUEST_BYTES,
        ),
        requestLimit: "MAX_UNAUTHENTICATED_REQUEST_BYTES",
        maxRequestElements,
        ...inline,
      });
    this.#maxPipeline = config.MAX_PIPELINE_REQUESTS;
    this.#initialBytes = config.CONNECTION_BUFFER_BYTES;
    this.#softOutputBytes = config.OUTPUT_BUFFER_SOFT_LIMIT_BYTES;
    this.#hardOutputBytes = config.OUTPUT_BUFFER_HARD_LIMIT_BYTES;
    this.#maxBufferBytes = config.MAX_REQUEST_BYTES + this.#initialBytes;
    this.#buffer = new Uint8Array(this.#initialBytes);
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

  /** Memory this connection holds: read buffer beyond its initial size, unsent replies. */
  get memoryBytes(): number {
    return this.#buffer.length - this.#initialBytes + this.#unsentBytes + this.#stepBytes +
      (this.transaction?.heldBytes ?? 0);
  }

  /** Reply bytes not yet sent. */
  get unsentBytes(): number {
    return this.#unsentBytes;
  }

  get type(): ConnectionType {
    return this.#type;
  }

  get pendingInputBytes(): number {
    return this.#end - this.#start;
  }

  get inputBufferBytes(): number {
    return this.#buffer.length;
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
    this.#parser.setMaxRequestBytes(this.#host.node.config.MAX_REQUEST_BYTES, "MAX_REQUEST_BYTES");
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
    const config = this.#host.node.config;
    this.#parser.setMaxRequestBytes(
      Math.min(config.MAX_UNAUTHENTICATED_REQUEST_BYTES, config.MAX_REQUEST_BYTES),
      "MAX_UNAUTHENTICATED_REQUEST_BYTES",
    );
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
          await steps;
          continue;
        }
        if (this.#closeAfterFlush) break;
        if (this.#inFlight >= this.#maxPipeline || this.#unsentBytes >= this.#softOutputBytes) {
          this.#pauseLogged();
          await new Promise<void>((resolve) => (this.#wakeReader = resolve));
          continue;
        }
        this.#makeRoom();
        const count = await this.#conn.read(this.#buffer.subarray(this.#end));
        if (count === null) {
          // Nobody reads the replies still pending: waits only they need can end now.
          this.#host.peerClosed(this);
          break;
        }
        if (this.#stopping) break;
        this.#end += count;
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
      this.#releaseGrowable();
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

  /**
   * Makes room to read into: reuses the buffer, compacts it, or grows it for a large request (at
   * most to MAX_REQUEST_BYTES and a read: a larger request is skipped by the parser, not kept).
   */
  #makeRoom(): void {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
      if (this.#buffer.length > this.#initialBytes * SHRINK_FACTOR) {
        this.#releaseGrowable();
        this.#buffer = new Uint8Array(this.#initialBytes);
        this.#reportMemory();
      }
      return;
    }
    const minimumRead = this.#initialBytes / 2;
    if (this.#buffer.length - this.#end >= minimumRead) return;
    const pending = this.#end - this.#start;
    if (pending + minimumRead <= this.#buffer.length) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#start = 0;
      this.#end = pending;
      return;
    }
    const doubled = Math.min(this.#buffer.length * 2, this.#maxBufferBytes);
    const size = Math.max(doubled, pending + minimumRead);
    // Reported first: past MAX_CLIENT_MEMORY_BYTES the server closes the connection holding the
    // most (maybe this one) before the new buffer exists.
    this.#reportMemory(size - this.#buffer.length);
    if (this.#closed) return;
    this.#buffer.copyWithin(0, this.#start, this.#end);
    this.#start = 0;
    this.#end = pending;
    if (size <= this.#initialBytes * SHRINK_FACTOR) {
      const grown = new Uint8Array(size);
      grown.set(this.#buffer.subarray(0, pending));
      this.#buffer = grown;
      return;
    }
    // A large request: a resizable buffer grows in place (no copy left behind for the garbage
    // collector) and gives its memory back at once when released, so the process's memory
    // follows what MAX_CLIENT_MEMORY_BYTES counts.
    const growable = this.#growable;
    if (growable !== undefined && size <= growable.maxByteLength) {
      growable.resize(size); // this.#buffer tracks its length
      return;
    }
    const reserved = Math.max(size, Math.min(size * GROWABLE_RESERVE_FACTOR, this.#maxBufferBytes));
    const next = new ArrayBuffer(size, { maxByteLength: reserved });
    const grown = new Uint8Array(next);
    grown.set(this.#buffer.subarray(0, pending));
    this.#releaseGrowable();
    this.#growable = next;
    this.#buffer = grown;
  }

  /**
   * Gives the memory of the resizable read buffer back now. Only when no read is pending into it
   * (its pages are unmapped): from {@link #makeRoom} and once the connection closed.
   */
  #releaseGrowable(): void {
    this.#growable?.resize(0);
    this.#growable = undefined;
  }

  /**
   * Runs every complete request in the buffer (within the pipeline and output bounds) as one
   * batch. When a request runs in steps, the batch ends with it: the promise returned settles
   * once it finished and the batch is on its way.
   */
  #runBuffered(): Promise<void> | undefined {
    const data = this.#buffer.subarray(0, this.#end);
    let writer: ReplyWriter | undefined;
    let count = 0;
    const observed: Observed | undefined = this.#host.observing
      ? { names: [], startedMs: performance.now() }
      : undefined;
    this.#batchLsn = 0;
    this.#holes = undefined;
    let framing: Framing | "mixed" | undefined;
    while (
      this.#inFlight + count < this.#maxPipeline && !this.#closeAfterFlush &&
      this.#unsentBytes + (writer === undefined ? 0 : writer.length) < this.#softOutputBytes
    ) {
      const request = this.#parser.next(data, this.#start);
      this.#start = this.#parser.offset;
      if (request === undefined) break;
      writer ??= this.#takeWriter();
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
      writer.error(request.message);
      if (request.limit !== undefined) {
        this.#host.limits.hit(
          request.limit,
          this.#host.node.config[request.limit],
          "connection {peer} sent a request that is too large; it was refused and skipped",
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
      this.#finishBatch(done, count, framing ?? "text", observed);
    });
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
    const command = this.#host.commands.get(request.name);
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
    if (command === undefined) {
      return {
        type: "error",
        message: resp
          ? unknownCommandMessage(request.name, request.args)
          : request.name.length === 0
          ? "Empty command line"
          : `Unknown command: ${describeCommandName(request.name)}`,
      };
    }
    const argCount = request.args.length;
    if (argCount < command.minArgs || argCount > command.maxArgs) {
      return {
        type: "error",
        message: resp
          ? wrongArityMessage(command.name)
          : `wrong number of arguments for '${command.name}'`,
      };
    }
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
        const name = command.name;
        const resp = writer.resp;
        const resp3 = writer.resp3;
        this.#steps = steps.catch((error) => {
          writer.length = mark;
          writer.resp = resp;
          writer.resp3 = resp3;
          writer.reply(this.#failed(name, error));
        });
      }
      if (later !== undefined) {
        this.#holes ??= [];
        const name = command.name;
        this.#holes.push({
          offset: writer.length,
          resp: writer.resp,
          resp3: writer.resp3,
          reply: later.catch((error) => this.#failed(name, error)),
        });
      }
    } catch (error) {
      writer.length = mark;
      writer.reply(this.#failed(command.name, error));
    }
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
      if (output !== writer) this.#releaseWriter(output);
      this.#releaseWriter(writer);
      this.#inFlight -= count;
      this.#unsentBytes -= batch.outputBytes;
      this.#reportMemory();
      if (this.#inFlight < this.#maxPipeline && this.#unsentBytes < this.#softOutputBytes) {
        this.#wake();
      }
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
    output.resp3 = false; // an error is the same in RESP2 and RESP3
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
      output.resp3 = holes[i].resp3;
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
