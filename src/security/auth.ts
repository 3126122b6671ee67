/**
 * Token authentication primitives: constant-time token comparison, loading a token from a file
 * (systemd credentials), and a bounded per-peer limiter for failed attempts.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** Raised when a configured token cannot be used (empty file, unreadable path, ...). */
export class AuthConfigError extends Error {
  override name = "AuthConfigError";
}

/**
 * Compares a presented token with the expected one in time that does not depend on where they
 * differ or on the presented token's length: both are hashed first, then compared with
 * `timingSafeEqual`.
 *
 * @example
 * ```ts
 * import { tokensEqual } from "./auth.ts";
 * console.log(tokensEqual("s3cret", "s3cret"), tokensEqual("guess", "s3cret")); // true false
 * ```
 */
export function tokensEqual(presented: string | Uint8Array, expected: string): boolean {
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Checks that `token` can travel as one word of a text request line: no spaces, tabs or control
 * characters. Throws {@link AuthConfigError} naming the setting otherwise.
 *
 * @example
 * ```ts
 * import { checkToken } from "./auth.ts";
 * checkToken("AUTH_TOKEN", "k7Qp-2v9"); // fine
 * ```
 */
export function checkToken(what: string, token: string): void {
  // deno-lint-ignore no-control-regex
  const bad = /[\s\x00-\x1f\x7f]/.exec(token);
  if (bad !== null) {
    throw new AuthConfigError(
      `${what}: the token holds a space or control character (code ${
        bad[0].charCodeAt(0)
      } at index ${bad.index}); tokens are one word, e.g. from openssl rand -hex 32`,
    );
  }
}

/**
 * The token a setting names: `value` itself, or the contents of `file` (one trailing newline
 * removed) when `file` is given, as systemd's `LoadCredential=` provides it. Returns `undefined`
 * when neither is set (authentication off).
 */
export async function resolveToken(
  what: string,
  value: string,
  file: string,
): Promise<string | undefined> {
  if (value !== "" && file !== "") {
    throw new AuthConfigError(`${what}: give the token or a token file, not both`);
  }
  if (file === "") {
    if (value === "") return undefined;
    checkToken(what, value);
    return value;
  }
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new AuthConfigError(`${what}: cannot read token file ${file}: ${String(error)}`);
  }
  const token = text.replace(/\r?\n$/, "");
  if (token === "") throw new AuthConfigError(`${what}: token file ${file} is empty`);
  checkToken(`${what} (from ${file})`, token);
  return token;
}

/** What {@link FailureLimiter.recordFailure} decided. */
export interface FailureVerdict {
  /** Failures of this peer inside the current window, this one included. */
  failuresInWindow: number;
  /**
   * True past `maxFailures` in the window: this failure is answered late and closes its
   * connection (the caller's policy). A correct credential is never held back.
   */
  penalized: boolean;
  /** True for the first failure of a window and the first penalized one: log those only. */
  shouldLog: boolean;
}

/**
 * Counts failed authentication attempts per peer address in fixed windows. It only judges
 * failures: a correct credential is accepted whatever the count (a flood of bad guesses from a
 * shared address must never lock out the right token), and success does not reset the count (a
 * client holding one valid token could otherwise reset it between guesses at another). The
 * number of peers tracked is bounded: when full, the entry with the oldest window is evicted.
 *
 * @example
 * ```ts
 * import { FailureLimiter } from "./auth.ts";
 * const limiter = new FailureLimiter({ maxFailures: 2, windowMs: 60_000, maxPeers: 1000 });
 * limiter.recordFailure("10.0.0.9", 0);
 * limiter.recordFailure("10.0.0.9", 1);
 * console.log(limiter.recordFailure("10.0.0.9", 2).penalized); // true
 * ```
 */
export class FailureLimiter {
  readonly #peers = new Map<string, { windowStartMs: number; failures: number }>();
  constructor(
    readonly options: { maxFailures: number; windowMs: number; maxPeers: number },
  ) {}

  /** Records one failed attempt by `peer` at `nowMs`. */
  recordFailure(peer: string, nowMs: number): FailureVerdict {
    let entry = this.#peers.get(peer);
    if (entry === undefined || nowMs - entry.windowStartMs >= this.options.windowMs) {
      if (entry === undefined && this.#peers.size >= this.options.maxPeers) this.#evictOldest();
      entry = { windowStartMs: nowMs, failures: 0 };
      this.#peers.set(peer, entry);
    }
    entry.failures++;
    return {
      failuresInWindow: entry.failures,
      penalized: entry.failures > this.options.maxFailures,
      shouldLog: entry.failures === 1 || entry.failures === this.options.maxFailures + 1,
    };
  }

  /** Peers currently tracked (bounded by `maxPeers`). */
  get trackedPeers(): number {
    return this.#peers.size;
  }

  #evictOldest(): void {
    let oldestPeer: string | undefined;
    let oldestStartMs = Infinity;
    for (const [peer, entry] of this.#peers) {
      if (entry.windowStartMs < oldestStartMs) {
        oldestStartMs = entry.windowStartMs;
        oldestPeer = peer;
      }
    }
    if (oldestPeer !== undefined) this.#peers.delete(oldestPeer);
  }
}
