/**
 * The seams other parts of kvstore plug into the server through, without editing it:
 * replication registers `REPLICATE` and waits for replica acknowledgements, auth gates commands,
 * and each may add an `INFO` section. A {@link ServerExtension} is a function that receives the
 * node (its store and config) once the store is open and returns its {@link ServerHooks}.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Framing, Reply, ReplyWriter } from "../protocol/mod.ts";
import type { KVStore } from "../storage/mod.ts";
import type { CommitPoint } from "./commit_point.ts";
import type { ReplaceableCommand } from "./commands.ts";
import type { LimitLog } from "./limit_log.ts";

/** Counters the server keeps (reported by `INFO`). */
export interface ServerStats {
  /** Connections open now. */
  connectedClients: number;
  /** Connections accepted since start. */
  totalConnections: number;
  /** Connections refused because of MAX_CONNECTIONS. */
  rejectedConnections: number;
  /**
   * Unauthenticated connections closed to admit a new one (MAX_UNAUTHENTICATED_CONNECTIONS, or
   * MAX_CONNECTIONS reached while some had not authenticated).
   */
  evictedUnauthenticated: number;
  /** Requests answered since start. */
  totalCommands: number;
  /** Read buffers beyond their initial size and unsent replies of all connections, in bytes. */
  clientMemoryBytes: number;
  /** Connections closed because all connections together passed MAX_CLIENT_MEMORY_BYTES. */
  evictedForMemory: number;
  /** Connections closed past OUTPUT_BUFFER_HARD_LIMIT_BYTES. */
  closedForOutput: number;
  /** Bytes read from and written to client connections since start. */
  netInputBytes: number;
  netOutputBytes: number;
  /** Keys removed because their time to live passed (Redis's `expired_keys`). */
  expiredKeys: number;
  /** Reads of one key that found it, and that did not (Redis's `keyspace_hits/misses`). */
  keyspaceHits: number;
  keyspaceMisses: number;
}

/** What kind of peer a connection is (Redis's `CLIENT LIST` `TYPE`). */
export type ConnectionType = "normal" | "master";

/** The node a server runs: what command handlers and extensions work with. */
export interface ServerNode {
  /** The node's settings. */
  readonly config: Config;
  /** The open store. */
  readonly store: KVStore;
  /**
   * True on a replica: client writes are refused. Changes at runtime (promotion, `REPLICAOF`):
   * the extension that owns the role ({@link ServerHooks.role}) says; without one, the settings.
   */
  readonly replica: boolean;
  /**
   * Why this master must acknowledge no more writes (a newer master exists), once replication
   * learned it: replies still waiting to be sent for writes applied here become errors that say
   * so (the write may be lost), never OK. Read from {@link ServerHooks.role}.
   */
  readonly deposed: string | undefined;
  /** Where this node's reads stop: only committed writes are shown (see `commit_point.ts`). */
  readonly commit: CommitPoint;
  /** The address the server listens on (set once it listens). */
  readonly host: string;
  /** The port it listens on (the real one when PORT was 0). */
  readonly port: number;
  /** `Date.now()` when the server started. */
  readonly startedAtMs: number;
  /**
   * Random 40 hex digits, new at each start (Redis's `run_id`): tells this node from another at
   * the same address, and itself under another name.
   */
  readonly runId: string;
  /** Counters for `INFO`. */
  readonly stats: ServerStats;
  /** Logs a limit hit with its setting and number, at most once a minute per setting. */
  readonly limits: LimitLog;
  /** The node's replication links, as data (none without the replication extension). */
  replication(): ReplicationStatus;
  /** The port of the RESP-only listener (`--resp-port`), or undefined when it is off. */
  readonly respPort: number | undefined;
  /**
   * The `INFO` text of a section or of several (none, `default`, `all` or `everything` for every
   * section; several are printed in the server's order), lines ending in `lineEnd`.
   */
  info(sections: string | readonly string[], lineEnd?: string): string;
  /** The command registered under `name` (upper-case), built-in or an extension's. */
  command(name: string): CommandSpec | undefined;
  /** The names (upper-case) of every command registered. */
  commandNames(): readonly string[];
  /** The connections open now (`CLIENT LIST`, `CLIENT KILL`). */
  connections(): Iterable<ConnectionInfo>;
  /**
   * Asks the extensions' gates whether `connection` may run `spec` (named `name`): a refusal, or
   * `undefined` when it may. `CLIENT KILL` asks it of an admin command for both ends.
   */
  authorize(name: string, connection: ConnectionInfo, spec: CommandSpec): Reply | undefined;
  /**
   * Redis's `RESET` of `connection`: extensions forget its state (`connectionReset`), and on a
   * node that requires authentication it must authenticate again.
   */
  resetConnection(connection: ConnectionInfo): void;
}

/**
 * Facts about the connection a request came on. The object is the same for the connection's
 * whole life: an extension keeps its own typed state per connection in a `WeakMap` keyed by it.
 */
export interface ConnectionInfo {
  /** Unique per server, from 1. */
  readonly id: number;
  /** Peer address as `host:port`. */
  readonly peer: string;
  /**
   * True once an extension vouched for the peer ({@link markAuthenticated}), or from the start
   * on a node where no extension {@link ServerHooks.requiresAuthentication}.
   */
  readonly authenticated: boolean;
  /**
   * Called by the auth extension once the peer proved a credential: the connection leaves the
   * unauthenticated ones (their deadline, their cap, their small request bound).
   */
  markAuthenticated(): void;
  /** LSN of the last write made on this connection (0: none): what Redis's `WAIT` waits for. */
  readonly lastWriteLsn: number;
  /** The RESP version its RESP replies use: 2, or 3 after `HELLO 3`. */
  protocol: 2 | 3;
  /** Its name (`CLIENT SETNAME`, `HELLO ... SETNAME`); "" when none. */
  name: string;
  /** What its client library said it is (`CLIENT SETINFO LIB-NAME|LIB-VER`); "" when not. */
  libName: string;
  libVersion: string;
  /** The local address it came to, as `host:port` (which listener). */
  readonly local: string;
  /** True on the RESP-only listener (`--resp-port`): every request is RESP or Redis inline. */
  readonly respOnly: boolean;
  /** `Date.now()` when it was accepted, and when it last sent a request. */
  readonly createdAtMs: number;
  readonly lastActiveMs: number;
  /** The last command it ran (Redis's lower-case full name, e.g. `client|list`). */
  lastCommand: string;
  /** `master` once it sent `REPLICATE` (a master's stream to this replica), else `normal`. */
  readonly type: ConnectionType;
  /** Bytes of requests received and not yet run, and the read buffer's size. */
  readonly pendingInputBytes: number;
  readonly inputBufferBytes: number;
  /** Reply bytes not yet sent, and all the memory it holds (MAX_CLIENT_MEMORY_BYTES). */
  readonly unsentBytes: number;
  readonly memoryBytes: number;
  /** Closes it now (`CLIENT KILL`); a connection killing itself closes after this reply. */
  kill(): void;
  /**
   * Its transaction state (`MULTI`, `WATCH`), set by the first of them; the connection hands
   * its requests to it while it is {@link TransactionState.queuing} and releases it when it
   * closes or is `RESET`.
   */
  transaction: TransactionState | undefined;
}

/**
 * What a connection keeps for Redis's transactions (see `src/redis/transactions.ts`): the
 * commands queued between `MULTI` and `EXEC`, and the keys it watches.
 */
export interface TransactionState {
  /** True between `MULTI` and `EXEC`/`DISCARD`: requests are queued, not run. */
  readonly queuing: boolean;
  /**
   * Memory the queue and the watched keys hold (their bytes and what each queued command,
   * argument and watched key costs besides): it counts against MAX_CLIENT_MEMORY_BYTES.
   */
  readonly heldBytes: number;
  /**
   * A request was refused before it could be queued (unknown command, wrong arity, refused by
   * a gate, a write on a replica): its error is the reply, and `EXEC` will abort.
   */
  refused(): void;
  /** Queues `command` (named `name`) with a copy of `args`; writes `QUEUED`, or why not. */
  queue(name: string, command: CommandSpec, args: Uint8Array[], out: ReplyWriter): void;
  /** Forgets the queue and every watched key (`RESET`, the connection closed). */
  release(): void;
}

/** What a handler gets besides its arguments. */
export interface CommandContext {
  /** The node the request came to. */
  readonly node: ServerNode;
  /** The connection it came on. */
  readonly connection: ConnectionInfo;
  /** Framing of this request (the writer is already set to it). */
  readonly framing: Framing;
  /**
   * How long one step of a request over many keys may run before it yields to other
   * connections: REQUEST_STEP_MS, or `Infinity` inside `EXEC` (a transaction's commands run to
   * their end in one turn, so no other client's request falls between them).
   */
  readonly stepMs: number;
  /**
   * Records that this request appended a record with log sequence number `lsn`: its reply (and
   * every reply of the same read) is sent only once `store.whenDurable(lsn)` resolved.
   */
  wrote(lsn: number): void;
  /**
   * Asks replication whether the reply of client write `lsn` must wait: `undefined` means reply
   * as soon as it is durable (async replication, or none); a promise resolves to `undefined` for
   * OK or to the message of the `ERROR` to send instead (sync replication timed out).
   */
  replicated(lsn: number): Promise<string | undefined> | undefined;
  /** Closes the connection once this request's reply is sent (`QUIT`). */
  closeAfterReply(): void;
  /**
   * The request goes on after the handler returned (call it last, and return nothing): `work`
   * runs in bounded steps that let other connections be served in between, writes the rest of
   * the reply into `out` and may call {@link wrote}. Until it settles the connection runs and
   * reads nothing more, so `args` stay valid; if it rejects, what it wrote is replaced by the
   * error reply.
   */
  inSteps(work: Promise<void>): void;
  /**
   * Called by `inSteps` work between its steps with the bytes its reply holds so far: they count
   * against MAX_CLIENT_MEMORY_BYTES at once. Returns false once the connection is closed (the
   * work should stop).
   */
  stepDone(heldBytes: number): boolean;
}

/**
 * An error a handler throws for a bad request: the client gets `ERROR: <message>` (RESP:
 * `-<code> <message>`). Nothing is logged, unless `report` names a kind of bad request an operator
 * should hear of (a malformed replication stream): then it is logged once per minute per kind,
 * with the peer. Any other error (except the storage's typed ones, which are answered the same
 * way) is answered `ERROR: Internal error: ...` and logged with its stack, once per minute.
 *
 * @example
 * ```ts
 * import { CommandError } from "./hooks.ts";
 * const error = new CommandError("REPLICATE LOG requires records");
 * console.log(error.code); // ERR
 * ```
 */
export class CommandError extends Error {
  /** Always `"CommandError"`. */
  override name = "CommandError";
  /**
   * `message` is sent to the client; `code` is the RESP error code word; `report`, when set, is
   * the kind under which the bad request is logged (at most once a minute).
   */
  constructor(message: string, readonly code = "ERR", readonly report?: string) {
    super(message);
  }
}

/**
 * Handles one request. `args` are views into the connection's read buffer: valid during the
 * synchronous part of the call only (copy what an asynchronous part needs). A handler either
 * writes its reply into `out` and returns nothing, or returns a promise of its {@link Reply}
 * (held in order: later replies on the connection wait for it). A thrown (or rejected)
 * {@link CommandError} or storage error becomes an `ERROR` reply with its message.
 */
export type CommandHandler = (
  args: Uint8Array[],
  out: ReplyWriter,
  context: CommandContext,
) => void | Promise<Reply>;

/** A command the server understands. */
export interface CommandSpec {
  /** Fewest arguments after the command word. */
  minArgs: number;
  /** Most arguments after the command word (`Infinity` for no bound). */
  maxArgs: number;
  /** A client write: refused on a replica. */
  write?: boolean;
  /** Accepted only on a replica (`REPLICATE`); a master answers with the spec's error. */
  replicaOnly?: boolean;
  /**
   * Runs at once between `MULTI` and `EXEC` instead of being queued (`EXEC`, `DISCARD`, `MULTI`,
   * `WATCH`, `QUIT`, `RESET`, as in Redis).
   */
  transactionControl?: boolean;
  /**
   * The reply when the command is refused before it runs (`refusal`: unknown arity, a gate, the
   * node's role); by default `refusal` itself. `EXEC` answers `EXECABORT` and drops the queue.
   */
  refused?(refusal: Reply, context: CommandContext): Reply;
  /**
   * Changes the cluster or writes as its master (`REPLICATE`, `PROMOTE`, `REPLICAS`): with a
   * replication token set, only a connection that proved it may run it, never one that holds
   * only the client token.
   */
  admin?: boolean;
  /** Runs the command. */
  handler: CommandHandler;
}

/** Fields of one `INFO` section, in order. */
export type InfoFields = [string, string | number | boolean][];

/** A replica as its master sees it (the status page, metrics). */
export interface ReplicaLinkStatus {
  address: string;
  /** `streaming`, `catching_up`, `full_sync` or `down`. */
  state: string;
  healthy: boolean;
  ackedLsn: number;
  lagRecords: number;
  lagMs: number;
  queuedRecords: number;
  fullSyncs: number;
  /** Its key prefixes when it is filtered (selective replication; absent: every key). */
  keyFilter?: string[];
  /** Why its last attempt failed (absent when it did not). */
  lastError?: string;
}

/** The master as a replica sees it. */
export interface MasterLinkStatus {
  /** Where clients reach the master (what it announced), "" before it connected. */
  address: string;
  /** `up` while its stream is connected and heard from, else `down`. */
  linkStatus: "up" | "down";
  /** Seconds since the master was last heard, or undefined before the first contact. */
  lastContactSeconds?: number;
  lastAppliedLsn: number;
  /** Records and ms behind the master, when it told how far it is. */
  lagRecords?: number;
  lagMs?: number;
  fullSyncInProgress: boolean;
  /** The key prefixes this replica holds, when it is filtered (selective replication). */
  keyFilter?: string[];
}

/** What replication says of a node's links, as data (never parsed back from `INFO`). */
export interface ReplicationStatus {
  /** On a replica: its master. */
  master?: MasterLinkStatus;
  /** Its replicas: a master's, or a replica's own (cascading); empty when it has none. */
  replicas: readonly ReplicaLinkStatus[];
}

/**
 * The node's role as the server's write gate reads it, and its links as the status page and
 * metrics read them. One extension owns it (replication's `NodeRole`, the only writer of a
 * node's role); two that claim it are an error at start.
 */
export interface RoleGate {
  /** True on a replica: client writes are refused. */
  readonly replica: boolean;
  /** Why replies of writes applied here must not be OK (a newer master exists), or undefined. */
  readonly deposed: string | undefined;
  /** The node's links now. */
  status(): ReplicationStatus;
}

/** What an extension plugs into the server. Every member is optional. */
export interface ServerHooks {
  /** The owner of the node's role, read by the write gate (at most one extension sets it). */
  role?: RoleGate;
  /**
   * Commands added, by upper-case name (e.g. `AUTH`). A name another extension or a built-in
   * command has already is an error at start: one command, one owner.
   */
  commands?: Record<string, CommandSpec>;
  /**
   * Built-in commands this extension replaces, on purpose: only those the server declares
   * replaceable (`REPLICATE`, which a node without replication answers with an error), each by
   * one extension at most.
   */
  replaces?: Partial<Record<ReplaceableCommand, CommandSpec>>;
  /**
   * Called for each acknowledged client write, after it is applied locally. Return `undefined`
   * to answer OK once it is durable (async replication), or a promise that resolves to
   * `undefined` for OK or to an error message for `ERROR: <message>` (sync replication).
   */
  awaitReplication?(lsn: number): Promise<string | undefined> | undefined;
  /**
   * Gate run before each command (auth): return a reply to refuse the command with it, or
   * `undefined` to let it run. `name` is the upper-case command name, `spec` the command.
   */
  authorize?(name: string, connection: ConnectionInfo, spec: CommandSpec): Reply | undefined;
  /**
   * True when connections must authenticate (a token is set): each starts unauthenticated, with
   * AUTH_TIMEOUT_SECONDS to authenticate, MAX_UNAUTHENTICATED_REQUEST_BYTES per request, and a
   * place among at most MAX_UNAUTHENTICATED_CONNECTIONS.
   */
  requiresAuthentication?: boolean;
  /**
   * Called once per batch (every request one read delivered) when its replies were written: the
   * upper-case names of its commands (`?` for an unknown command or an unparsable request; the
   * array is the callee's to keep) and the seconds from the read to the reply write, which is the
   * latency every request of the batch saw (metrics). Costs nothing when no extension sets it.
   */
  answered?(names: readonly string[], elapsedSeconds: number): void;
  /** Called once a connection has closed (e.g. a replica's master stream ended). */
  connectionClosed?(connection: ConnectionInfo): void;
  /**
   * Called when the peer closed its side of a connection, before the replies still pending are
   * done (then {@link connectionClosed} follows): nobody will read them, so waits that only they
   * need (`WAIT`, a write concern, a `MINLSN` read) can end now.
   */
  peerClosed?(connection: ConnectionInfo): void;
  /**
   * Redis's `RESET` on `connection`: forget what this extension keeps for it (authentication,
   * a transaction being queued, watched keys), as if it had just connected.
   */
  connectionReset?(connection: ConnectionInfo): void;
  /** `INFO` sections added or replaced, by lower-case name. */
  info?: Record<string, () => InfoFields>;
  /**
   * Called when a graceful shutdown starts, before in-flight requests are awaited: finish at
   * once what only waits (e.g. a delayed reply to a failed AUTH).
   */
  stopping?(): void;
  /**
   * Called on graceful shutdown after client requests finished and before the store closes
   * (e.g. drain replicas within SHUTDOWN_TIMEOUT_SECONDS).
   */
  close?(): Promise<void>;
}

/** Builds the hooks of one part of kvstore once the node's store is open. */
export type ServerExtension = (node: ServerNode) => ServerHooks | Promise<ServerHooks>;
