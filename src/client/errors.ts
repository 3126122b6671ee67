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
  /** `reason` says what went wrong; `options.cause` keeps the underlying error. */
  constructor(
    /** The server's `host:port`. */
    readonly address: string,
    reason: string,
    options?: ErrorOptions,
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
