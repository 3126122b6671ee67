/**
 * One persistent RESP connection to one kvstore node, shared by every call made through it.
 * Calls made together are written together (one write per event-loop turn) and their replies are
 * matched in order, so concurrent calls pipeline for free. `KVClient` uses one per node (and one
 * more per node to watch the cluster's topology). Uses only relative and `node:` imports, so it
 * can be imported by URL.
 *
 * @module
 */
import { challengeProof, isHex64, newNonce, proofMatches } from "../protocol/challenge.ts";
import {
  type CommandArgument,
  INCOMPLETE,
  RespCommandWriter,
  RespErrorReply,
  RespProtocolError,
  RespReplyParser,
  type RespValue,
} from "../protocol/resp.ts";
import {
  KVAuthError,
  KVConnectionError,
  KVError,
  KVReadOnlyError,
  KVServerError,
  KVTimeoutError,
  KVWriteConcernError,
} from "./errors.ts";
import { CLIENT_DEFAULTS } from "./defaults.ts";
import { writeAll } from "../write_all.ts";

/**
 * How to reach one node: the options of a {@link KVClient} that concern each connection.
 *
 * @example
 * ```ts
 * import type { KVClientOptions } from "../../mod.ts";
 * const options: KVClientOptions = { host: "127.0.0.1", port: 5556, timeoutMs: 2000 };
 * ```
 */
export interface NodeConnectionOptions {
  /** Server host. Default `127.0.0.1`. */
  host?: string;
  /** Server port. Default `5555`. */
  port?: number;
  /**
   * Most time to wait for connecting and for each reply, in milliseconds; 0 waits forever.
   * Default 10000.
   */
  timeoutMs?: number;
  /**
   * Calls sent and not yet answered. A call past it rejects at once with {@link KVError} rather
   * than queue without bound: await some calls before sending more. Default 100000.
   */
  maxPendingCalls?: number;
  /** Largest single value accepted in a reply, in bytes. Default 1 GiB. */
  maxReplyBulkBytes?: number;
  /**
   * The server's `AUTH_TOKEN`: sent with `AUTH` first on every connection the client opens. A
   * refused token fails the calls with {@link KVAuthError}.
   */
  token?: string;
  /**
   * The server's replication token, needed for the commands that change the cluster (`PROMOTE`,
   * `REPLICAS`). The client proves it on every connection it opens (`CHALLENGE`/`PROVE`) and
   * checks the server's proof in return: the token never crosses the wire, and a server that
   * cannot prove it fails the calls with {@link KVAuthError}.
   */
  replicationToken?: string;
  /**
   * Connect over TLS (a server started with `--tls-cert`/`--tls-key`). `caCerts` are PEM
   * certificates trusted besides the system's roots, e.g. the CA that signed the server's
   * certificate; the certificate must name `host`.
   */
  tls?: KVClientTlsOptions;
}

/**
 * TLS settings of a {@link KVClient}.
 *
 * @example
 * ```ts
 * import type { KVClientOptions } from "../../mod.ts";
 * const caPem = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
 * const options: KVClientOptions = { host: "db.example", port: 5555, tls: { caCerts: [caPem] } };
 * ```
 */
export interface KVClientTlsOptions {
  /** PEM certificates to trust besides the system's root certificates. */
  caCerts?: string[];
}

/** Bounds on what one reply may make the connection hold (a topology probe's are small). */
export interface ReplyLimits {
  /** Most elements of one reply array. */
  maxReplyElements: number;
  /** Most bytes of one whole reply. */
  maxReplyBytes: number;
}

interface PendingCall {
  command: string;
  deadlineMs: number;
  resolve(value: RespValue): void;
  reject(error: Error): void;
}

/** Initial read buffer; it grows for a larger reply. */
const READ_BUFFER_BYTES = 64 * 1024;
/** A buffer that grew past this for one large request or reply shrinks back once emptied. */
const MAX_KEPT_BUFFER_BYTES = 1024 * 1024;

const decoder = new TextDecoder();

function commandName(parts: readonly CommandArgument[]): string {
  const first = parts[0];
  return typeof first === "string" ? first : decoder.decode(first);
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatAddress(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A pipelined connection to one node. The constructor does not connect: the first call does.
 *
 * @example
 * ```ts
 * import { NodeConnection } from "./node_connection.ts";
 * const connection = new NodeConnection({ host: "127.0.0.1", port: 5555, timeoutMs: 2000 });
 * async function size(): Promise<number> {
 *   return await connection.send(["DBSIZE"]) as number;
 * }
 * await connection.close();
 * ```
 */
export class NodeConnection implements AsyncDisposable {
  /** The server's `host:port`. */
  readonly address: string;
  readonly #host: string;
  readonly #port: number;
  readonly #timeoutMs: number;
  readonly #maxPendingCalls: number;
  readonly #maxReplyBulkBytes: number;
  readonly #limits: ReplyLimits;
  readonly #token: string | undefined;
  readonly #replicationToken: string | undefined;
  /** Handshake requests (AUTH, CHALLENGE, PROVE) queued ahead of every call. */
  #handshakeCalls = 0;
  readonly #tls: KVClientTlsOptions | undefined;
  #conn: Deno.Conn | undefined;
  #connecting: Promise<Deno.Conn> | undefined;
  #out = new RespCommandWriter(4096);
  #spareOut = new RespCommandWriter(4096);
  /** Calls awaiting their reply, oldest first from {@link #pendingHead}. */
  #pending: (PendingCall | undefined)[] = [];
  #pendingHead = 0;
  #flushScheduled = false;
  #writing = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #idle: (() => void) | undefined;

  /**
   * A connection to the server at `options.host:options.port`; it connects on the first call.
   * `limits` bound each reply (default: `CLIENT_DEFAULTS.maxReplyElements`, no byte bound).
   */
  constructor(options: NodeConnectionOptions = {}, limits?: Partial<ReplyLimits>) {
    this.#host = options.host ?? "127.0.0.1";
    this.#port = options.port ?? 5555;
    this.#timeoutMs = options.timeoutMs ?? CLIENT_DEFAULTS.timeoutMs;
    this.#maxPendingCalls = options.maxPendingCalls ?? CLIENT_DEFAULTS.maxPendingCalls;
    this.#maxReplyBulkBytes = options.maxReplyBulkBytes ?? CLIENT_DEFAULTS.maxReplyBulkBytes;
    this.#limits = {
      maxReplyElements: limits?.maxReplyElements ?? CLIENT_DEFAULTS.maxReplyElements,
      maxReplyBytes: limits?.maxReplyBytes ?? Infinity,
    };
    this.#token = options.token;
    this.#replicationToken = options.replicationToken;
    this.#tls = options.tls;
    if (!Number.isFinite(this.#timeoutMs) || this.#timeoutMs < 0) {
      throw new RangeError(`timeoutMs ${options.timeoutMs} must be 0 or a positive number`);
    }
    for (
      const [name, value] of [
        ["maxPendingCalls", this.#maxPendingCalls],
        ["maxReplyBulkBytes", this.#maxReplyBulkBytes],
      ] as const
    ) {
      if (!Number.isInteger(value) || value < 1) {
        throw new RangeError(`${name} ${value} must be a whole number of at least 1`);
      }
    }
    this.address = formatAddress(this.#host, this.#port);
  }

  /** True while a connection is open (calls go out without connecting first). */
  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /** Calls sent whose reply has not arrived. */
  get pendingCalls(): number {
    return this.#pendingCount;
  }

  /**
   * Sends any command as a RESP array and resolves to its raw reply (a simple string as
   * `string`, a bulk string as `Uint8Array`, an integer as `number`, a null as `null`, arrays as
   * arrays). An error reply rejects with {@link KVServerError}. With `recover`, a failure (an
   * error reply, a broken connection, a timeout) resolves to what `recover` makes of it instead.
   *
   * @example
   * ```ts
   * import type { NodeConnection } from "./node_connection.ts";
   * async function keyCount(connection: NodeConnection): Promise<number> {
   *   return await connection.send(["DBSIZE"]) as number;
   * }
   * ```
   */
  send(
    parts: readonly CommandArgument[],
    recover?: (error: Error) => Promise<RespValue>,
  ): Promise<RespValue> {
    let refusal: Error | undefined;
    if (this.#closed) {
      refusal = new KVConnectionError(this.address, "the client is closed", undefined, false);
    } else if (parts.length === 0) {
      refusal = new RangeError("a command needs a name");
    } else if (this.#pendingCount >= this.#maxPendingCalls) {
      refusal = new KVError(
        `${this.#pendingCount} calls to ${this.address} are already waiting for replies ` +
          `(maxPendingCalls ${this.#maxPendingCalls}); await some before sending more`,
      );
    }
    if (refusal !== undefined) return recover?.(refusal) ?? Promise.reject(refusal);
    // One promise per call: an error reply is turned into its error here, and a failure goes to
    // `recover` (the cluster's retry) without a promise of its own.
    return new Promise<RespValue>((resolve, reject) => {
      const fail = recover === undefined ? reject : (error: Error) => resolve(recover(error));
      this.#out.command(parts);
      this.#pending.push({
        command: commandName(parts),
        deadlineMs: this.#timeoutMs === 0 ? Infinity : Date.now() + this.#timeoutMs,
        resolve: (reply) => {
          if (reply instanceof RespErrorReply) fail(errorOf(reply));
          else resolve(reply);
        },
        reject: fail,
      });
      this.#armTimer();
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  /**
   * Waits for the calls in flight, then closes the connection. Later calls reject with
   * {@link KVConnectionError}.
   *
   * @example
   * ```ts
   * import { NodeConnection } from "./node_connection.ts";
   * const connection = new NodeConnection({ port: 5555 });
   * await connection.close(); // nothing was in flight: returns at once
   * ```
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#pendingCount > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    this.#drop(new KVConnectionError(this.address, "the client is closed"));
  }

  /**
   * Same as {@link close}, for `await using`.
   *
   * @example
   * ```ts
   * import { NodeConnection } from "./node_connection.ts";
   * {
   *   await using connection = new NodeConnection({ port: 5555 });
   * } // closed here
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  get #pendingCount(): number {
    return this.#pending.length - this.#pendingHead;
  }

  /** Opens TCP (no delay), then TLS when asked, handshake included so a bad certificate fails here. */
  async #open(): Promise<Deno.Conn> {
    const tcp = await Deno.connect({ hostname: this.#host, port: this.#port });
    tcp.setNoDelay(true);
    if (this.#tls === undefined) return tcp;
    const tls = await Deno.startTls(tcp, { hostname: this.#host, caCerts: this.#tls.caCerts });
    try {
      await tls.handshake();
    } catch (error) {
      tls.close();
      // rustls's words for a plain-text answer to the handshake.
      const plain = /corrupt message|InvalidContentType/.test(describe(error));
      throw new KVConnectionError(
        this.address,
        plain
          ? "TLS handshake failed: the server does not speak TLS (it answered in plain text); " +
            "connect without the tls option"
          : `TLS handshake failed: ${describe(error)} (does tls.caCerts hold the CA that signed ` +
            `the server's certificate, and does the certificate name ${this.#host}?)`,
        { cause: error },
        false,
      );
    }
    return tls;
  }

  /**
   * Writes a handshake request ahead of every queued call; `onReply` sees its reply. Resolves
   * once it is written (AUTH: replies are not awaited, so calls pipeline behind it).
   */
  async #handshake(
    conn: Deno.Conn,
    words: string[],
    onReply: (reply: RespValue) => void,
    onFailure: (error: Error) => void = () => {},
  ): Promise<void> {
    const out = new RespCommandWriter(64 + words.reduce((sum, word) => sum + word.length, 0));
    out.command(words);
    this.#pending.splice(this.#pendingHead + this.#handshakeCalls, 0, {
      command: words[0],
      deadlineMs: this.#timeoutMs === 0 ? Infinity : Date.now() + this.#timeoutMs,
      resolve: (reply) => {
        this.#handshakeCalls--;
        onReply(reply);
      },
      reject: (error) => {
        this.#handshakeCalls--;
        onFailure(error);
      },
    });
    this.#handshakeCalls++;
    this.#armTimer();
    await writeAll(conn, out.bytes);
  }

  /** Sends a handshake request and waits for its reply. */
  #handshakeReply(conn: Deno.Conn, words: string[]): Promise<RespValue> {
    return new Promise((resolve, reject) => {
      this.#handshake(conn, words, resolve, reject).catch(reject);
    });
  }

  /** Queues `AUTH <token>` as the first request of a new connection. */
  async #authenticate(conn: Deno.Conn, token: string): Promise<void> {
    await this.#handshake(conn, ["AUTH", token], (reply) => {
      if (!(reply instanceof RespErrorReply)) return;
      this.#drop(
        new KVAuthError(reply.code, `kvstore at ${this.address}: AUTH refused: ${reply.message}`),
      );
    });
  }

  /**
   * Proves the replication token (`CHALLENGE`, `PROVE`) and checks the server's proof, before
   * any call is sent. A server without tokens (it answers CHALLENGE with an error) needs none.
   */
  async #proveReplicationToken(conn: Deno.Conn, token: string): Promise<void> {
    const dialerNonce = newNonce();
    const challenge = await this.#handshakeReply(conn, ["CHALLENGE", dialerNonce]);
    if (challenge instanceof RespErrorReply) return;
    if (typeof challenge !== "string" || !isHex64(challenge)) {
      throw new KVAuthError("ERR", `kvstore at ${this.address}: CHALLENGE got no nonce`);
    }
    const reply = await this.#handshakeReply(conn, [
      "PROVE",
      challengeProof(token, "dialer", dialerNonce, challenge),
    ]);
    if (reply instanceof RespErrorReply) {
      throw new KVAuthError(
        reply.code,
        `kvstore at ${this.address}: the replication token was refused: ${reply.message}`,
      );
    }
    const expected = challengeProof(token, "node", dialerNonce, challenge);
    if (typeof reply !== "string" || !proofMatches(reply, expected)) {
      throw new KVAuthError(
        "WRONGPASS",
        `kvstore at ${this.address} did not prove it holds the replication token: a different ` +
          `token, or not the node you meant`,
      );
    }
  }

  async #connect(): Promise<Deno.Conn> {
    this.#connecting ??= (async () => {
      const attempt = this.#open();
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const conn = this.#timeoutMs === 0 ? await attempt : await Promise.race([
          attempt,
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new KVTimeoutError("connect", this.address, this.#timeoutMs)),
              this.#timeoutMs,
            );
          }),
        ]);
        this.#conn = conn;
        this.#readLoop(conn);
        if (this.#token !== undefined) await this.#authenticate(conn, this.#token);
        if (this.#replicationToken !== undefined) {
          await this.#proveReplicationToken(conn, this.#replicationToken);
        }
        return conn;
      } catch (error) {
        // A connect that completes after its timeout must not leak a socket.
        attempt.then((conn) => conn.close(), () => {});
        if (error instanceof KVError) throw error;
        // Nothing was sent: the calls waiting for this connection never reached the server.
        throw new KVConnectionError(
          this.address,
          `cannot connect: ${describe(error)}`,
          { cause: error },
          false,
        );
      } finally {
        clearTimeout(timer);
        this.#connecting = undefined;
      }
    })();
    return await this.#connecting;
  }

  async #flush(): Promise<void> {
    this.#flushScheduled = false;
    if (this.#writing) return;
    this.#writing = true;
    let conn: Deno.Conn | undefined;
    try {
      while (this.#out.length > 0) {
        conn = this.#conn ?? await this.#connect();
        const batch = this.#out;
        this.#out = this.#spareOut;
        this.#spareOut = batch;
        await writeAll(conn, batch.bytes);
        batch.reset(MAX_KEPT_BUFFER_BYTES);
      }
    } catch (error) {
      // A failed write on a connection already dropped concerns calls already rejected.
      if (conn === undefined || conn === this.#conn) {
        this.#drop(
          error instanceof KVError
            ? error
            : new KVConnectionError(this.address, `sending failed: ${describe(error)}`, {
              cause: error,
            }),
        );
      }
    } finally {
      this.#writing = false;
      if (this.#out.length > 0 && !this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => this.#flush());
      }
    }
  }

  async #readLoop(conn: Deno.Conn): Promise<void> {
    const parser = new RespReplyParser({
      maxBulkBytes: this.#maxReplyBulkBytes,
      maxArrayElements: this.#limits.maxReplyElements,
      maxReplyBytes: this.#limits.maxReplyBytes,
    });
    let buffer = new Uint8Array(READ_BUFFER_BYTES);
    let start = 0;
    let end = 0;
    try {
      for (;;) {
        if (start === end) {
          start = end = 0;
          if (buffer.length > MAX_KEPT_BUFFER_BYTES) buffer = new Uint8Array(READ_BUFFER_BYTES);
        } else if (buffer.length - end < READ_BUFFER_BYTES / 4) {
          const pending = end - start;
          if (pending + READ_BUFFER_BYTES / 4 <= buffer.length) {
            buffer.copyWithin(0, start, end);
          } else {
            const grown = new Uint8Array(Math.max(buffer.length * 2, pending + READ_BUFFER_BYTES));
            grown.set(buffer.subarray(start, end));
            buffer = grown;
          }
          start = 0;
          end = pending;
        }
        const count = await conn.read(buffer.subarray(end));
        if (count === null) {
          throw new KVConnectionError(this.address, "the server closed the connection");
        }
        end += count;
        const data = buffer.subarray(0, end);
        for (;;) {
          let reply: RespValue | typeof INCOMPLETE;
          try {
            reply = parser.next(data, start);
          } catch (error) {
            const text = decoder.decode(data.subarray(start, Math.min(end, start + 200))).trim();
            throw new KVConnectionError(
              this.address,
              `refused the server's reply (${describe(error)}); it began ${JSON.stringify(text)}`,
              { cause: error },
            );
          }
          start = parser.offset;
          if (reply === INCOMPLETE) break;
          this.#deliver(reply);
        }
      }
    } catch (error) {
      if (this.#conn !== conn) return;
      this.#drop(
        error instanceof KVError
          ? error
          : new KVConnectionError(this.address, `connection failed: ${describe(error)}`, {
            cause: error,
          }),
      );
    }
  }

  #deliver(reply: RespValue): void {
    const call = this.#pending[this.#pendingHead];
    if (call === undefined) {
      throw new RespProtocolError("a reply arrived for no request");
    }
    this.#pending[this.#pendingHead++] = undefined;
    if (this.#pendingHead > 1024 && this.#pendingHead * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#pendingHead);
      this.#pendingHead = 0;
    }
    call.resolve(reply);
    if (this.#pendingCount === 0) {
      this.#pending.length = 0;
      this.#pendingHead = 0;
      this.#idle?.();
      this.#idle = undefined;
    }
  }

  #armTimer(): void {
    if (this.#timer !== undefined || this.#timeoutMs === 0) return;
    const head = this.#pending[this.#pendingHead];
    if (head === undefined) return;
    this.#timer = setTimeout(
      () => this.#checkDeadlines(),
      Math.max(0, head.deadlineMs - Date.now()),
    );
  }

  /** Fires at the oldest call's deadline; re-arms for the next one if it was answered already. */
  #checkDeadlines(): void {
    this.#timer = undefined;
    const head = this.#pending[this.#pendingHead];
    if (head === undefined) return;
    if (head.deadlineMs > Date.now()) {
      this.#armTimer();
      return;
    }
    const timeout = new KVTimeoutError(head.command, this.address, this.#timeoutMs);
    this.#pendingHead++;
    head.reject(timeout);
    this.#drop(
      new KVConnectionError(
        this.address,
        `connection dropped after ${head.command} got no reply within timeoutMs ${this.#timeoutMs}`,
        { cause: timeout },
      ),
    );
  }

  /** Fails every call in flight with `error` and forgets the connection (the next call reconnects). */
  #drop(error: Error): void {
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const calls = this.#pending.slice(this.#pendingHead);
    this.#pending = [];
    this.#pendingHead = 0;
    this.#out.reset(MAX_KEPT_BUFFER_BYTES);
    for (const call of calls) call?.reject(error);
    this.#idle?.();
    this.#idle = undefined;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The error of an error reply, typed by its code word. */
function errorOf(reply: RespErrorReply): KVError {
  if (reply.code === "READONLY") return new KVReadOnlyError(reply.message);
  if (reply.code === "NOAUTH" || reply.code === "WRONGPASS") {
    return new KVAuthError(reply.code, reply.message);
  }
  if (reply.code === "WRITECONCERN") return KVWriteConcernError.fromReply(reply.message);
  return new KVServerError(
    reply.code,
    reply.code === "ERR" ? reply.message : `${reply.code} ${reply.message}`,
  );
}
