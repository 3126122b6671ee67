/**
 * `startServer(config)`: listens (TCP, or whatever `listen` returns, e.g. TLS), opens the store,
 * accepts connections up to MAX_CONNECTIONS and serves each one (see `connection.ts`). `close()`
 * is the graceful stop used on SIGINT/SIGTERM: stop accepting, let every connection finish the
 * requests it has in flight and write their replies (bounded by SHUTDOWN_TIMEOUT_SECONDS), run
 * the extensions' `close` (replication drains), then close the store (flush and sync the log).
 *
 * @module
 */
import type { Config } from "../config.ts";
import { getLog } from "../log.ts";
import { CommandTable, type Reply } from "../protocol/mod.ts";
import { KVStore, storeOptionsFromConfig } from "../storage/mod.ts";
import { REDIS_COMMANDS } from "../redis/mod.ts";
import { BUILT_IN_COMMANDS, REPLACEABLE_COMMANDS, type ReplaceableCommand } from "./commands.ts";
import { Connection, type ConnectionHost, type NamedCommand } from "./connection.ts";
import type {
  CommandSpec,
  ConnectionInfo,
  InfoFields,
  ReplicationStatus,
  RoleGate,
  ServerExtension,
  ServerHooks,
  ServerNode,
  ServerStats,
} from "./hooks.ts";
import { CommitPoint } from "./commit_point.ts";
import { formatInfo, InfoState, RATE_SAMPLE_INTERVAL_MS } from "./info.ts";
import { LimitLog } from "./limit_log.ts";

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** Parts of kvstore that plug in (replication, auth, ...), each given the open node. */
  extensions?: ServerExtension[];
  /** Opens the listener; the default is `Deno.listen` (TCP). TLS plugs in here. */
  listen?: (options: { hostname: string; port: number }) => Deno.Listener;
}

/** A server that is accepting connections. */
export interface RunningServer {
  /** The address it listens on. */
  readonly host: string;
  /** The port it listens on (the real one when PORT was 0). */
  readonly port: number;
  /** The RESP-only listener's port (`--resp-port`), or undefined when it is off. */
  readonly respPort: number | undefined;
  /** The node: store, config, role, stats. */
  readonly node: ServerNode;
  /** Resolves once the server stopped (after {@link close}). */
  readonly closed: Promise<void>;
  /** Graceful stop (idempotent): finishes in-flight requests, closes the store. */
  close(): Promise<void>;
}

const log = getLog("server");

/** The address part of a `host:port` peer (IPv6 hosts contain colons). */
function peerAddress(peer: string): string {
  const colon = peer.lastIndexOf(":");
  return colon === -1 ? peer : peer.slice(0, colon);
}

function hasSetNoDelay(conn: Deno.Conn): conn is Deno.TcpConn {
  return typeof (conn as Partial<Deno.TcpConn>).setNoDelay === "function";
}

class Server implements RunningServer, ConnectionHost, ServerNode {
  readonly config: Config;
  readonly store: KVStore;
  readonly commit: CommitPoint;
  /** The role's owner (replication), once an extension supplied it. */
  #role: RoleGate | undefined;
  host = "";
  port = 0;
  readonly startedAtMs = Date.now();
  readonly runId = Array.from(
    crypto.getRandomValues(new Uint8Array(20)),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  readonly stats: ServerStats = {
    connectedClients: 0,
    totalConnections: 0,
    rejectedConnections: 0,
    evictedUnauthenticated: 0,
    totalCommands: 0,
    clientMemoryBytes: 0,
    evictedForMemory: 0,
    closedForOutput: 0,
    netInputBytes: 0,
    netOutputBytes: 0,
    expiredKeys: 0,
    keyspaceHits: 0,
    keyspaceMisses: 0,
  };
  respPort: number | undefined;
  readonly node: ServerNode = this;
  readonly log = log;
  readonly limits = new LimitLog(log);
  readonly commands = new CommandTable<NamedCommand>();
  readonly #infoSections = new Map<string, () => InfoFields>();
  readonly #infoState = new InfoState();
  #sampler: ReturnType<typeof setInterval> | undefined;
  readonly #hooks: ServerHooks[] = [];
  readonly #answeredHooks: ((names: readonly string[], elapsedSeconds: number) => void)[] = [];
  /** The hooks' `authorize` and `awaitReplication`, bound: asked per request and per write. */
  readonly #authorizers: NonNullable<ServerHooks["authorize"]>[] = [];
  readonly #replicationWaits: NonNullable<ServerHooks["awaitReplication"]>[] = [];
  observing = false;
  requiresAuthentication = false;
  readonly #connections = new Set<Connection>();
  /** Connections not yet authenticated, by peer address, each set oldest first. */
  readonly #unauthenticated = new Map<string, Set<Connection>>();
  #unauthenticatedCount = 0;
  /** The AUTH_TIMEOUT_SECONDS deadline of each unauthenticated connection. */
  readonly #authDeadlines = new Map<Connection, ReturnType<typeof setTimeout>>();
  readonly #options: StartServerOptions;
  #listener: Deno.Listener | undefined;
  #respListener: Deno.Listener | undefined;
  #nextConnectionId = 1;
  #closing: Promise<void> | undefined;
  #allClosed: (() => void) | undefined;
  #resolveClosed!: () => void;
  readonly closed: Promise<void>;

  constructor(config: Config, store: KVStore, options: StartServerOptions) {
    this.config = config;
    this.store = store;
    this.commit = new CommitPoint(store);
    this.#options = options;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    for (const [name, spec] of [...BUILT_IN_COMMANDS, ...REDIS_COMMANDS]) {
      this.commands.set(name, { ...spec, name });
      this.#commandOwners.set(name, "built-in");
    }
  }

  get replica(): boolean {
    return this.#role === undefined ? this.config.REPLICA : this.#role.replica;
  }

  get deposed(): string | undefined {
    return this.#role?.deposed;
  }

  replication(): ReplicationStatus {
    return this.#role?.status() ?? { replicas: [] };
  }

  /**
   * Who registered each command: `built-in`, or `extension <n>` (its place in the list). A name
   * registered twice fails the start: one command, one owner.
   */
  readonly #commandOwners = new Map<string, string>();

  #addCommands(hooks: ServerHooks, owner: string): void {
    for (const [name, spec] of Object.entries(hooks.commands ?? {})) {
      const upper = name.toUpperCase();
      const taken = this.#commandOwners.get(upper);
      if (taken !== undefined) {
        throw new Error(
          `command ${upper} is registered twice (by ${taken} and by ${owner}): a command has ` +
            `one owner (a built-in command is replaced only through ServerHooks.replaces)`,
        );
      }
      this.#commandOwners.set(upper, owner);
      this.commands.set(upper, { ...spec, name: upper });
    }
    for (const [name, spec] of Object.entries(hooks.replaces ?? {})) {
      const upper = name.toUpperCase() as ReplaceableCommand;
      if (this.#commandOwners.get(upper) !== "built-in" || !REPLACEABLE_COMMANDS.has(upper)) {
        throw new Error(
          `${owner} replaces ${upper}, which is not a replaceable built-in command or was ` +
            `replaced already (by ${this.#commandOwners.get(upper) ?? "nobody"})`,
        );
      }
      this.#commandOwners.set(upper, owner);
      this.commands.set(upper, { ...spec, name: upper });
    }
  }

  info(sections: string | readonly string[], lineEnd = "\r\n"): string {
    const wanted = typeof sections === "string" ? [sections] : sections;
    return formatInfo(this, wanted, this.#infoSections, this.#infoState, lineEnd);
  }

  command(name: string): CommandSpec | undefined {
    return this.commands.get(new TextEncoder().encode(name));
  }

  commandNames(): readonly string[] {
    return [...this.#commandOwners.keys()];
  }

  connections(): Iterable<ConnectionInfo> {
    return this.#connections;
  }

  resetConnection(connection: ConnectionInfo): void {
    for (const hooks of this.#hooks) hooks.connectionReset?.(connection);
    if (connection instanceof Connection) connection.reset();
  }

  async start(
    listener: Deno.Listener,
    respListener: Deno.Listener | undefined,
    recoveryMs: number,
  ): Promise<void> {
    const extensions = this.#options.extensions ?? [];
    for (const [index, extension] of extensions.entries()) {
      const hooks = await extension(this);
      this.#hooks.push(hooks);
      if (hooks.role !== undefined) {
        if (this.#role !== undefined) {
          throw new Error("two extensions claim the node's role: only one may own it");
        }
        this.#role = hooks.role;
      }
      this.#addCommands(hooks, `extension ${index + 1}`);
      if (hooks.authorize !== undefined) this.#authorizers.push(hooks.authorize.bind(hooks));
      if (hooks.awaitReplication !== undefined) {
        this.#replicationWaits.push(hooks.awaitReplication.bind(hooks));
      }
      if (hooks.answered !== undefined) {
        this.#answeredHooks.push(hooks.answered.bind(hooks));
        this.observing = true;
      }
      for (const [name, fields] of Object.entries(hooks.info ?? {})) {
        this.#infoSections.set(name.toLowerCase(), fields);
      }
      if (hooks.requiresAuthentication) this.requiresAuthentication = true;
    }
    this.#warnIfDataDirOpen();
    this.#listener = listener;
    const address = this.#listener.addr as Deno.NetAddr;
    this.host = address.hostname;
    this.port = address.port;
    this.#respListener = respListener;
    this.respPort = (respListener?.addr as Deno.NetAddr | undefined)?.port;
    const stats = this.store.stats();
    log.info(
      "listening on {host}:{port} as {role}" +
        (this.respPort === undefined ? "" : " (RESP only on port {respPort})") +
        "; data in {dataDir}: {keys} keys, last LSN {lastLsn}, recovered in {recoveryMs} ms; " +
        "fsync {fsync}",
      {
        event: "listening",
        host: this.host,
        port: this.port,
        respPort: this.respPort,
        role: this.replica ? "replica" : "master",
        dataDir: this.config.DATA_DIR,
        keys: stats.keys,
        lastLsn: stats.lastLsn,
        recoveryMs: Math.round(recoveryMs * 10) / 10,
        fsync: this.config.FSYNC,
        pid: Deno.pid,
      },
    );
    this.#sampler = setInterval(
      () => this.#infoState.sample(this, Date.now()),
      RATE_SAMPLE_INTERVAL_MS,
    );
    Deno.unrefTimer(this.#sampler);
    this.#acceptLoop(this.#listener, false);
    if (respListener !== undefined) this.#acceptLoop(respListener, true);
  }

  /** A data directory made before kvstore created them 0700 may still let others read it. */
  #warnIfDataDirOpen(): void {
    if (Deno.build.os === "windows") return;
    const mode = (Deno.statSync(this.config.DATA_DIR).mode ?? 0) & 0o777;
    if ((mode & 0o077) === 0) return;
    log.warn(
      "data directory {dataDir} has mode {mode}: other users may read the data. kvstore " +
        "creates it 0700 and its files 0600; run chmod 700 {dataDir}",
      { event: "data_dir_open", dataDir: this.config.DATA_DIR, mode: mode.toString(8) },
    );
  }

  /** Accepts connections of `listener`; `respOnly` for the RESP-only listener. */
  async #acceptLoop(listener: Deno.Listener, respOnly: boolean): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (this.#closing !== undefined) return;
        log.error("accepting a connection failed: {error}; retrying in 100 ms", {
          error: String(error),
        });
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (this.#closing !== undefined) {
        conn.close();
        return;
      }
      this.#makeRoomForUnauthenticated(conn);
      if (this.#connections.size >= this.config.MAX_CONNECTIONS) {
        this.#reject(conn);
        continue;
      }
      if (hasSetNoDelay(conn)) conn.setNoDelay(true);
      const connection = new Connection(conn, this.#nextConnectionId++, this, respOnly);
      this.#connections.add(connection);
      this.stats.connectedClients = this.#connections.size;
      this.stats.totalConnections++;
      if (!connection.authenticated) this.#trackUnauthenticated(connection);
      connection.serve();
    }
  }

  /**
   * A new connection starts unauthenticated: when MAX_UNAUTHENTICATED_CONNECTIONS are, or
   * MAX_CONNECTIONS are open and some of them are, the oldest unauthenticated connection of the
   * address holding the most is closed to admit it. Idle or guessing connections can so never
   * keep out a client (or a master's link) that authenticates, and one noisy address evicts its
   * own connections first.
   */
  #makeRoomForUnauthenticated(conn: Deno.Conn): void {
    if (!this.requiresAuthentication || this.#unauthenticatedCount === 0) return;
    const cap = Math.min(this.config.MAX_UNAUTHENTICATED_CONNECTIONS, this.config.MAX_CONNECTIONS);
    if (
      this.#unauthenticatedCount < cap && this.#connections.size < this.config.MAX_CONNECTIONS
    ) {
      return;
    }
    let largest: Set<Connection> | undefined;
    for (const connections of this.#unauthenticated.values()) {
      if (largest === undefined || connections.size > largest.size) largest = connections;
    }
    const oldest = largest?.values().next().value;
    if (oldest === undefined) return;
    const address = conn.remoteAddr as Deno.NetAddr;
    this.limits.hit(
      this.#unauthenticatedCount >= cap ? "MAX_UNAUTHENTICATED_CONNECTIONS" : "MAX_CONNECTIONS",
      this.#unauthenticatedCount >= cap ? cap : this.config.MAX_CONNECTIONS,
      "closed unauthenticated connection {evicted} ({fromAddress} unauthenticated from its " +
        "address, {unauthenticated} in all) to admit {peer}",
      {
        evicted: oldest.peer,
        fromAddress: largest?.size,
        unauthenticated: this.#unauthenticatedCount,
        peer: `${address.hostname}:${address.port}`,
      },
    );
    this.stats.evictedUnauthenticated++;
    this.#untrackUnauthenticated(oldest);
    this.#connections.delete(oldest);
    oldest.forceClose();
  }

  #trackUnauthenticated(connection: Connection): void {
    const address = peerAddress(connection.peer);
    let connections = this.#unauthenticated.get(address);
    if (connections === undefined) {
      connections = new Set();
      this.#unauthenticated.set(address, connections);
    }
    connections.add(connection);
    this.#unauthenticatedCount++;
    const timeoutSeconds = this.config.AUTH_TIMEOUT_SECONDS;
    const deadline = setTimeout(() => {
      this.#authDeadlines.delete(connection);
      this.limits.hit(
        "AUTH_TIMEOUT_SECONDS",
        timeoutSeconds,
        "closed connection {peer}: it did not authenticate in time",
        { peer: connection.peer },
      );
      this.#untrackUnauthenticated(connection);
      connection.forceClose();
    }, timeoutSeconds * 1000);
    this.#authDeadlines.set(connection, deadline);
  }

  #untrackUnauthenticated(connection: Connection): void {
    const deadline = this.#authDeadlines.get(connection);
    if (deadline !== undefined) {
      clearTimeout(deadline);
      this.#authDeadlines.delete(connection);
    }
    const address = peerAddress(connection.peer);
    const connections = this.#unauthenticated.get(address);
    if (connections === undefined || !connections.delete(connection)) return;
    this.#unauthenticatedCount--;
    if (connections.size === 0) this.#unauthenticated.delete(address);
  }

  connectionAuthenticated(connection: Connection): void {
    this.#untrackUnauthenticated(connection);
  }

  connectionDeauthenticated(connection: Connection): void {
    this.#trackUnauthenticated(connection);
  }

  memoryChanged(_connection: Connection, deltaBytes: number): void {
    this.stats.clientMemoryBytes += deltaBytes;
    if (deltaBytes > 0 && this.stats.clientMemoryBytes > this.config.MAX_CLIENT_MEMORY_BYTES) {
      this.#evictForMemory();
    }
  }

  /**
   * Past MAX_CLIENT_MEMORY_BYTES: closes the connections holding the most until what they hold
   * covers the excess (their memory is given back as they unwind). Redis's maxmemory-clients.
   */
  #evictForMemory(): void {
    const limit = this.config.MAX_CLIENT_MEMORY_BYTES;
    const candidates = [...this.#connections].filter((c) => !c.closed && c.memoryBytes > 0);
    candidates.sort((a, b) => b.memoryBytes - a.memoryBytes);
    for (const connection of candidates) {
      if (this.stats.clientMemoryBytes <= limit) break;
      this.stats.evictedForMemory++;
      this.limits.hit(
        "MAX_CLIENT_MEMORY_BYTES",
        limit,
        "closed connection {peer}, which held {heldBytes} bytes ({unsentBytes} of unsent " +
          "replies): all connections together held {totalBytes}",
        {
          peer: connection.peer,
          heldBytes: connection.memoryBytes,
          unsentBytes: connection.unsentBytes,
          totalBytes: this.stats.clientMemoryBytes,
        },
      );
      this.stats.clientMemoryBytes -= connection.evict();
    }
  }

  /** Answers a connection past MAX_CONNECTIONS with one ERROR line and closes it. */
  async #reject(conn: Deno.Conn): Promise<void> {
    this.stats.rejectedConnections++;
    const address = conn.remoteAddr as Deno.NetAddr;
    const limit = this.config.MAX_CONNECTIONS;
    this.limits.hit(
      "MAX_CONNECTIONS",
      limit,
      "refused a connection from {peer}: {open} connections are open",
      { peer: `${address.hostname}:${address.port}`, open: this.#connections.size },
    );
    try {
      await conn.write(
        new TextEncoder().encode(
          `ERROR: too many connections (MAX_CONNECTIONS is ${limit}); try again later\n`,
        ),
      );
    } catch {
      // The peer went away first; nothing to tell it.
    } finally {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  peerClosed(connection: Connection): void {
    for (const hooks of this.#hooks) hooks.peerClosed?.(connection);
  }

  connectionClosed(connection: Connection): void {
    this.#untrackUnauthenticated(connection);
    this.#connections.delete(connection);
    this.stats.connectedClients = this.#connections.size;
    for (const hooks of this.#hooks) hooks.connectionClosed?.(connection);
    if (this.#connections.size === 0) this.#allClosed?.();
  }

  awaitReplication(lsn: number): Promise<string | undefined> | undefined {
    // Runs per client write: the usual single wait is returned without an array.
    let first: Promise<string | undefined> | undefined;
    let waits: Promise<string | undefined>[] | undefined;
    for (const awaitReplication of this.#replicationWaits) {
      const wait = awaitReplication(lsn);
      if (wait === undefined) continue;
      if (first === undefined) first = wait;
      else (waits ??= [first]).push(wait);
    }
    if (waits === undefined) return first;
    return Promise.all(waits).then((errors) => errors.find((error) => error !== undefined));
  }

  answered(names: readonly string[], elapsedSeconds: number): void {
    for (const hook of this.#answeredHooks) hook(names, elapsedSeconds);
  }

  authorize(name: string, connection: ConnectionInfo, spec: CommandSpec): Reply | undefined {
    for (const authorize of this.#authorizers) {
      const refusal = authorize(name, connection, spec);
      if (refusal !== undefined) return refusal;
    }
    return undefined;
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const timeoutMs = this.config.SHUTDOWN_TIMEOUT_SECONDS * 1000;
    log.info("stopping: no new connections; finishing the requests of {connections} connections", {
      event: "stopping",
      connections: this.#connections.size,
    });
    clearInterval(this.#sampler);
    for (const listener of [this.#listener, this.#respListener]) {
      try {
        listener?.close();
      } catch {
        // Already closed.
      }
    }
    for (const hooks of this.#hooks) hooks.stopping?.();
    if (this.#connections.size > 0) {
      const drained = new Promise<void>((resolve) => (this.#allClosed = resolve));
      for (const connection of this.#connections) connection.stop();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      });
      const expired = await Promise.race([drained.then(() => false), timedOut]);
      clearTimeout(timer);
      if (expired) {
        log.warn(
          "{connections} connections still busy after SHUTDOWN_TIMEOUT_SECONDS ({seconds} s); " +
            "closing them",
          { connections: this.#connections.size, seconds: this.config.SHUTDOWN_TIMEOUT_SECONDS },
        );
        for (const connection of this.#connections) connection.forceClose();
      }
    }
    try {
      for (const hooks of this.#hooks) {
        try {
          await hooks.close?.();
        } catch (error) {
          // One extension failing to stop must not keep the log from being flushed and closed.
          log.error("an extension failed to stop: {error}", { error: String(error) });
        }
      }
      await this.store.close();
      log.info("stopped; the log is flushed and synced", { event: "stopped" });
    } finally {
      this.#resolveClosed();
    }
  }
}

/**
 * Listens on `config.HOST:config.PORT`, then opens the store in `config.DATA_DIR` and serves it.
 *
 * @example
 * ```ts
 * import { loadConfig } from "../config.ts";
 * import { startServer } from "./server.ts";
 * const dataDir = await Deno.makeTempDir();
 * const { config } = loadConfig({ overrides: { PORT: 0, DATA_DIR: dataDir } });
 * const server = await startServer(config);
 * console.log(`serving on ${server.host}:${server.port}`);
 * await server.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export async function startServer(
  config: Config,
  options: StartServerOptions = {},
): Promise<RunningServer> {
  // The port first: a node that cannot listen must not create (or recover) its data directory.
  // Connections that arrive before the store is open wait in the kernel's accept queue.
  const listener = listenOn(config, config.PORT, "--port", options);
  let respListener: Deno.Listener | undefined;
  let store: KVStore;
  const started = performance.now();
  try {
    if (config.RESP_ENABLED) {
      respListener = listenOn(config, config.RESP_PORT, "--resp-port", options);
    }
    store = await KVStore.open(config.DATA_DIR, storeOptionsFromConfig(config));
  } catch (error) {
    listener.close();
    respListener?.close();
    throw error;
  }
  const recoveryMs = performance.now() - started;
  const server = new Server(config, store, options);
  try {
    await server.start(listener, respListener, recoveryMs);
  } catch (error) {
    for (const opened of [listener, respListener]) {
      try {
        opened?.close();
      } catch {
        // Closed already.
      }
    }
    await store.close();
    throw error;
  }
  return server;
}

/** Opens a listener on `port` (set by `flag`); a refusal names the address and what to do. */
function listenOn(
  config: Config,
  port: number,
  flag: string,
  options: StartServerOptions,
): Deno.Listener {
  const listen = options.listen ?? ((listenOptions) => Deno.listen(listenOptions));
  const address = config.HOST.includes(":") ? `[${config.HOST}]:${port}` : `${config.HOST}:${port}`;
  try {
    return listen({ hostname: config.HOST, port });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `cannot listen on ${address}: the address is already in use (another kvstore node or ` +
          `program listens there); stop it or choose another ${flag}`,
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new Error(
        `cannot listen on ${address}: no network interface of this machine has address ` +
          `${config.HOST} (--host)`,
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new Error(
        `cannot listen on ${address}: permission denied (ports below 1024 need privileges)`,
        { cause: error },
      );
    }
    throw error;
  }
}
