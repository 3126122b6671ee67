/**
 * Every command family the conformance test compares with Redis. Add a family's table here.
 *
 * @module
 */
import type { ConformanceFamily } from "../conformance.ts";
import { CONNECTION, CONNECTION_AUTH } from "./connection.ts";
import { KEYSPACE } from "./keyspace.ts";
import { COUNTERS, EXPIRY, LCS, STRINGS, STRINGS_RESP3 } from "./strings.ts";
import { TRANSACTIONS, TRANSACTIONS_AUTH } from "./transactions.ts";

export const FAMILIES: readonly ConformanceFamily[] = [
  CONNECTION,
  CONNECTION_AUTH,
  TRANSACTIONS,
  TRANSACTIONS_AUTH,
  KEYSPACE,
  STRINGS,
  STRINGS_RESP3,
  LCS,
  COUNTERS,
  EXPIRY,
];
