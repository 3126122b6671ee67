/**
 * Conformance tables of Redis's transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, their errors
 * (nested MULTI, EXEC or DISCARD without MULTI, WATCH inside MULTI), EXECABORT after an error
 * while queuing, errors of queued commands as items of EXEC's reply, and RESP3.
 *
 * @module
 */
import { CONFORMANCE_TOKEN, type ConformanceFamily } from "../conformance.ts";

const K = "conformance:tx:k";
const L = "conformance:tx:l";

export const TRANSACTIONS: ConformanceFamily = {
  family: "transactions",
  setup: [["DEL", K, L]],
  cases: [
    {
      name: "queued commands answer QUEUED and run at EXEC, each with its reply",
      steps: [
        ["MULTI"],
        ["SET", K, "1"],
        ["GET", K],
        ["EXISTS", K, L],
        ["MSET", K, "2", L, "3"],
        ["MGET", K, L],
        ["DEL", L],
        ["EXEC"],
        ["GET", K],
        ["MULTI"],
        ["EXEC"],
      ],
    },
    {
      name: "a flush by another client fails EXEC only when a watched key existed (Redis 7)",
      steps: [
        ["WATCH", L],
        { send: ["FLUSHALL"], other: true },
        ["MULTI"],
        ["GET", L],
        ["EXEC"],
        ["SET", K, "1"],
        ["WATCH", K, L],
        { send: ["FLUSHDB"], other: true },
        ["MULTI"],
        ["GET", K],
        ["EXEC"],
      ],
    },
    {
      // Redis 7 judges expiry at the instant EXEC began: a key set with PX 1 inside is still
      // there for a GET after thousands of other commands (past 1 ms here). PTTL, which counts
      // from the clock, says 0 then, but 1 on a machine fast enough to run them all within the
      // millisecond, so it is not compared. Once EXEC is over, the key is gone.
      name: "no key expires between two commands of one EXEC (Redis 7's frozen expiry clock)",
      steps: [
        ["MULTI"],
        ["SET", K, "short-lived", "PX", "1"],
        ...Array.from({ length: 5000 }, (_, i) => ["SET", L, String(i)]),
        ["GET", K],
        ["EXISTS", K],
        ["EXEC"],
        ["GET", K],
      ],
    },
    {
      name: "errors around MULTI, in Redis's words",
      steps: [
        ["EXEC"],
        ["DISCARD"],
        ["MULTI"],
        ["MULTI"],
        ["WATCH", K],
        ["PING"],
        ["EXEC"],
        ["WATCH"],
        ["UNWATCH", "x"],
        ["MULTI", "x"],
        ["EXEC", "x"],
        ["DISCARD", "x"],
      ],
    },
    {
      name: "an error while queuing aborts EXEC (EXECABORT) and nothing runs",
      steps: [
        ["MULTI"],
        ["SET", K, "queued"],
        ["NOSUCHCOMMAND", "a"],
        ["GET"],
        ["EXEC"],
        ["GET", K],
        ["EXEC"],
      ],
    },
    {
      name: "an error when a queued command runs is its item; the others run",
      steps: [
        ["MULTI"],
        ["SET", K, "a"],
        ["SELECT", "1"],
        ["SELECT", "x"],
        ["GET", K],
        ["EXEC"],
      ],
    },
    {
      name: "DISCARD drops the queue and the watched keys",
      steps: [
        ["WATCH", K],
        ["MULTI"],
        ["SET", K, "discarded"],
        ["DISCARD"],
        ["GET", K],
        ["SET", K, "mine"],
        ["MULTI"],
        ["GET", K],
        ["EXEC"],
      ],
    },
    {
      name: "a watched key changed by this connection fails EXEC with a null array",
      steps: [
        ["WATCH", K, L, K],
        ["SET", K, "changed"],
        ["MULTI"],
        ["SET", L, "x"],
        ["EXEC"],
        ["EXISTS", L],
        ["MULTI"],
        ["SET", L, "y"],
        ["EXEC"],
      ],
    },
    {
      name: "UNWATCH forgets; a deleted watched key counts as changed; RESP3 null",
      steps: [
        ["SET", K, "v"],
        ["WATCH", K],
        ["UNWATCH"],
        ["SET", K, "w"],
        ["MULTI"],
        ["GET", K],
        ["EXEC"],
        ["WATCH", K],
        ["DEL", K],
        ["MULTI"],
        ["GET", K],
        ["EXEC"],
        { send: ["HELLO", "3"], compare: "shape" },
        ["WATCH", L],
        ["SET", L, "z"],
        ["MULTI"],
        ["GET", L],
        ["EXEC"],
        ["MULTI"],
        ["GET", L],
        ["EXEC"],
      ],
    },
    {
      name: "HELLO 3 queued in MULTI: the replies after it in EXEC are RESP3",
      steps: [
        ["MULTI"],
        ["GET", K],
        ["HELLO", "3"],
        ["GET", K],
        { send: ["EXEC"], mask: /:\d+\\r\\n\$4\\r\\nmode/ },
        ["GET", K],
      ],
    },
    {
      name: "RESET ends a transaction",
      steps: [
        ["MULTI"],
        ["SET", K, "reset"],
        ["RESET"],
        ["EXEC"],
        ["GET", K],
      ],
    },
  ],
};

/** With a password: a refused EXEC (not authenticated) is EXECABORT with the refusal's words. */
export const TRANSACTIONS_AUTH: ConformanceFamily = {
  family: "transactions with a password",
  auth: true,
  cases: [
    {
      name: "MULTI and EXEC before AUTH",
      steps: [
        ["MULTI"],
        ["EXEC"],
        ["DISCARD"],
        ["AUTH", CONFORMANCE_TOKEN],
        ["MULTI"],
        ["SET", K, "1"],
        ["DEL", K],
        ["EXEC"],
      ],
    },
  ],
};
