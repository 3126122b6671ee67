/**
 * Challenge-response proof of the replication (admin) token: the side that dials (a master's
 * link to its replica, or `kvstore promote`) and the node it dialed each prove they hold the
 * token, and the token itself never crosses the wire.
 *
 * ## Exchange (RESP or text; nonces and proofs are lower-case hex)
 * ```
 * CHALLENGE <dialerNonce>   → +<nodeNonce>
 * PROVE <dialerProof>       → +<nodeProof>
 * ```
 * - `dialerNonce`, `nodeNonce`: 32 random bytes each (64 hex digits), one pair per connection,
 *   so neither side can choose or replay what the other signs.
 * - `dialerProof = HMAC-SHA256(token, "kvstore-auth-v1 dialer <dialerNonce> <nodeNonce>")`
 * - `nodeProof   = HMAC-SHA256(token, "kvstore-auth-v1 node <dialerNonce> <nodeNonce>")`
 *
 * The dialer proves first and the node answers with its own proof only after it checked the
 * dialer's, so a stranger who connects to a node learns nothing derived from the token (no
 * material for an offline guess). The dialer checks the node's proof before it sends anything
 * else: an endpoint that does not hold the token (say, an address an attacker got added as a
 * replica) gets no data and no credential it could replay elsewhere. Distinct labels keep a
 * node's proof from ever being usable as a dialer's. Relaying a live exchange between a master
 * and a real node needs a man in the middle; TLS (`REPLICATION_TLS_CA`) is what stops that.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Random bytes in a nonce (written as twice as many hex digits). */
export const NONCE_BYTES = 32;

const HEX_64 = /^[0-9a-f]{64}$/;
const LABEL = "kvstore-auth-v1";

/**
 * The error message of `CHALLENGE` (and `PROVE`) on a node without tokens: part of the exchange,
 * so a dialer can tell "authentication is off there" from a refusal with
 * {@link isChallengeOff} (a master tolerates it, with a warning).
 */
export const CHALLENGE_OFF_MESSAGE =
  "CHALLENGE called, but this node has no REPLICATION_TOKEN or AUTH_TOKEN (authentication is off)";

/**
 * True when an error reply to `CHALLENGE` says the node has no tokens (this version's
 * {@link CHALLENGE_OFF_MESSAGE}, or an older one's, which began the same way).
 *
 * @example
 * ```ts
 * import { CHALLENGE_OFF_MESSAGE, isChallengeOff } from "./challenge.ts";
 * console.log(isChallengeOff(CHALLENGE_OFF_MESSAGE)); // true
 * console.log(isChallengeOff("invalid token")); // false
 * ```
 */
export function isChallengeOff(message: string): boolean {
  return message.startsWith("CHALLENGE called, but");
}

/** Which side a proof comes from. */
export type ProofRole = "dialer" | "node";

/**
 * A fresh nonce: {@link NONCE_BYTES} random bytes as lower-case hex.
 *
 * @example
 * ```ts
 * import { newNonce } from "./challenge.ts";
 * console.log(newNonce().length); // 64
 * ```
 */
export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString("hex");
}

/** True when `text` has the shape of a nonce or a proof (64 lower-case hex digits). */
export function isHex64(text: string): boolean {
  return HEX_64.test(text);
}

/**
 * The proof `role` gives for the nonce pair, keyed by `token`.
 *
 * @example
 * ```ts
 * import { challengeProof, newNonce, proofMatches } from "./challenge.ts";
 * const [dialer, node] = [newNonce(), newNonce()];
 * const proof = challengeProof("s3cret", "dialer", dialer, node);
 * console.log(proofMatches(proof, challengeProof("s3cret", "dialer", dialer, node))); // true
 * console.log(proofMatches(proof, challengeProof("s3cret", "node", dialer, node))); // false
 * ```
 */
export function challengeProof(
  token: string,
  role: ProofRole,
  dialerNonce: string,
  nodeNonce: string,
): string {
  return createHmac("sha256", token).update(`${LABEL} ${role} ${dialerNonce} ${nodeNonce}`)
    .digest("hex");
}

/** Compares a presented proof with the expected one in constant time (for its length). */
export function proofMatches(presented: string, expected: string): boolean {
  if (presented.length !== expected.length || !isHex64(presented)) return false;
  return timingSafeEqual(Buffer.from(presented, "latin1"), Buffer.from(expected, "latin1"));
}
