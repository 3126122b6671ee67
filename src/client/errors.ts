/**
 * Errors a {@link KVClient} call can reject with. Each says what failed and where; catch the
 * base class {@link KVError} for any of them.
 *
 * @module
 */

/**
 * Base class of every error the client raises.
 *
 * @example
 * ```ts
 * import { KVError, KVTimeoutError } from "./errors.ts";
 * const error: KVError = new KVTimeoutError("READ", "127.0.0.1:5555", 100);
 * console.log(error instanceof KVError); // true
 * ```
 */
export class KVError extends Error {
  /** Always `"KVError"`. */
  override name = "KVError";
}

/**
 * The connection to the server could not be opened, or broke. A write that was in flight when it
 * broke may or may not have been applied. The next call opens a new connection.
 *
 * @example
 * ```ts
 * import { KVConnectionError } from "./errors.ts";
 * const error = new KVConnectionError("127.0.0.1:1", "connection refused");
 * console.log(error.message); // kvstore at 127.0.0.1:1: connection refused
 * ```
 */
export class KVConnectionError extends KVError {
  /** Always `"KVConnectionError"`. */
  override name = "KVConnectionError";
  /**
   * `reason` says what went wrong; `options.cause` keeps the underlying error; `requestSent` is
   * false when the connection could not be opened, so the request never reached the server.
   */
  constructor(
    /** The server's `host:port`. */
    readonly address: string,
    reason: string,
    options?: ErrorOptions,
    /** False when the request certainly never reached the server (it could not connect). */
    readonly requestSent: boolean = true,
  ) {
    super(`kvstore at ${address}: ${reason}`, options);
  }
}

/**
 * The server answered with an error (a bad request, a limit, a failed write, ...).
 *
 * @example
 * ```ts
 * import { KVServerError } from "./errors.ts";
 * const error = new KVServerError("ERR", "key of 70000 bytes is larger than MAX_KEY_BYTES 65536");
 * console.log(error.code, error.message);
 * ```
 */
export class KVServerError extends KVError {
  /** Always `"KVServerError"`. */
  override name = "KVServerError";
  /** `message` is the server's error text without its code word. */
  constructor(
    /** The error's code word, e.g. `ERR` or `READONLY`. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A write was sent to a replica, which is read-only: send it to the master.
 *
 * @example
 * ```ts
 * import { KVReadOnlyError, KVServerError } from "./errors.ts";
 * const error = new KVReadOnlyError("Replica nodes are read-only.");
 * console.log(error instanceof KVServerError); // true
 * ```
 */
export class KVReadOnlyError extends KVServerError {
  /** Always `"KVReadOnlyError"`. */
  override name = "KVReadOnlyError";
  /** `message` is the server's error text. */
  constructor(message: string) {
    super("READONLY", message);
  }
}

/**
 * The server requires authentication and the client has no token (`NOAUTH`), or its token was
 * refused (`WRONGPASS`, or too many failed attempts from this address). Give the server's
 * `AUTH_TOKEN` as the client's `token` option.
 *
 * @example
 * ```ts
 * import { KVAuthError, KVServerError } from "./errors.ts";
 * const error = new KVAuthError("NOAUTH", "Authentication required: send AUTH <token> first");
 * console.log(error instanceof KVServerError, error.code); // true NOAUTH
 * ```
 */
export class KVAuthError extends KVServerError {
  /** Always `"KVAuthError"`. */
  override name = "KVAuthError";
}

/**
 * No reply came within `timeoutMs`. The client then drops its connection (other calls in flight
 * on it fail with {@link KVConnectionError}) and the next call reconnects; the timed-out request
 * may or may not have been applied.
 *
 * @example
 * ```ts
 * import { KVTimeoutError } from "./errors.ts";
 * const error = new KVTimeoutError("PUT", "127.0.0.1:5555", 5000);
 * console.log(error.timeoutMs); // 5000
 * ```
 */
export class KVTimeoutError extends KVError {
  /** Always `"KVTimeoutError"`. */
  override name = "KVTimeoutError";
  /** Names the command, the server and the timeout that passed. */
  constructor(
    /** The command that timed out. */
    readonly command: string,
    /** The server's `host:port`. */
    readonly address: string,
    /** The timeout that passed. */
    readonly timeoutMs: number,
  ) {
    super(`kvstore at ${address}: no reply to ${command} within timeoutMs ${timeoutMs}`);
  }
}

/**
 * A write's own write concern was not met: it is applied on the master (at LSN {@link lsn}) but
 * fewer replicas than asked have it within the concern's `timeoutMs`. It is not undone: it
 * reaches the replicas when they catch up (unless a replica without it is promoted first).
 *
 * @example
 * ```ts
 * import { KVWriteConcernError } from "./errors.ts";
 * const error = new KVWriteConcernError(1, 2, 42, "write applied on the master (LSN 42) ...");
 * console.log(error.acknowledgedReplicas, error.requiredReplicas, error.lsn); // 1 2 42
 * ```
 */
export class KVWriteConcernError extends KVServerError {
  /** Always `"KVWriteConcernError"`. */
  override name = "KVWriteConcernError";
  /** `message` is the server's explanation. */
  constructor(
    /** Replicas that have the write. */
    readonly acknowledgedReplicas: number,
    /** Replicas the write concern asked for. */
    readonly requiredReplicas: number,
    /** The write's LSN on the master. */
    readonly lsn: number,
    message: string,
  ) {
    super("WRITECONCERN", message);
  }

  /**
   * The error of a `-WRITECONCERN <acked> <required> <lsn> <text>` reply (its message without
   * the code word).
   */
  static fromReply(message: string): KVWriteConcernError {
    const match = /^(\d+) (\d+) (\d+) (.*)$/s.exec(message);
    if (match === null) return new KVWriteConcernError(0, 0, 0, message);
    return new KVWriteConcernError(
      Number(match[1]),
      Number(match[2]),
      Number(match[3]),
      match[4],
    );
  }
}

/**
 * A write that cannot be retried safely lost its connection (or its master) after it was sent:
 * it may or may not have been applied. `KVClient` retries a write on the new master only when
 * applying it twice means the same as once (`put`, `delete`, `batchPut`, and `send` of
 * `SET k v`/`DEL`/`MSET`); any other command surfaces this instead of guessing. Read the data to
 * learn what happened.
 *
 * @example
 * ```ts
 * import { KVOutcomeUnknownError } from "./errors.ts";
 * const error = new KVOutcomeUnknownError("INCR", "127.0.0.1:5555", "the connection broke");
 * console.log(error.command, error.address);
 * ```
 */
export class KVOutcomeUnknownError extends KVError {
  /** Always `"KVOutcomeUnknownError"`. */
  override name = "KVOutcomeUnknownError";
  /** `reason` says what broke; `options.cause` keeps the error it came with. */
  constructor(
    /** The command whose outcome is unknown. */
    readonly command: string,
    /** The node it was sent to (`host:port`). */
    readonly address: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(
      `the outcome of ${command} at ${address} is unknown: ${reason}; it may or may not have ` +
        `been applied, and it is not retried because applying it twice could change its meaning`,
      options,
    );
  }
}

/**
 * No node could serve a call within the client's bounds (`maxRetries`, `retryTimeoutMs`): no
 * master was found (a failover that did not finish in time, a partition between the client and
 * the master), or no node matched the read preference. The message says what each known node
 * looked like; `cause` is the last error met.
 *
 * @example
 * ```ts
 * import { KVUnavailableError } from "./errors.ts";
 * const error = new KVUnavailableError("no master found after 3 attempts in 1200 ms");
 * console.log(error.message);
 * ```
 */
export class KVUnavailableError extends KVError {
  /** Always `"KVUnavailableError"`. */
  override name = "KVUnavailableError";
}
