/**
 * The commands the client's and the sessions' methods send, and how their replies read: one
 * place, so `KVClient` and `KVSession` decode alike.
 *
 * @module
 */
import type { CommandArgument, RespValue } from "../protocol/resp.ts";
import { KVError } from "./errors.ts";
import type { KVKey, KVValue } from "./options.ts";

const decoder = new TextDecoder();

/** The error for a reply the command never gives. */
export function unexpected(command: string, reply: RespValue): KVError {
  const shown = reply instanceof Uint8Array ? decoder.decode(reply.subarray(0, 100)) : reply;
  return new KVError(`unexpected reply to ${command}: ${JSON.stringify(shown)}`);
}

/** Checks an `OK` reply. */
export function expectOk(reply: RespValue): void {
  if (reply !== "OK") throw unexpected("the command", reply);
}

/** A `READ` reply as the value's bytes, or undefined when the key is missing. */
export function valueOf(reply: RespValue): Uint8Array | undefined {
  if (reply === null) return undefined;
  if (reply instanceof Uint8Array) return reply;
  throw unexpected("READ", reply);
}

/** A value as a string (UTF-8; bytes that are not UTF-8 become U+FFFD). */
export function decodeValue(value: Uint8Array | undefined): string | undefined {
  return value === undefined ? undefined : decoder.decode(value);
}

/** Pairs as strings. */
export function decodePairs(pairs: [Uint8Array, Uint8Array][]): [string, string][] {
  return pairs.map(([key, value]) => [decoder.decode(key), decoder.decode(value)]);
}

/** A `DELETE` reply: whether the key existed. */
export function existed(reply: RespValue): boolean {
  if (reply === 1 || reply === 0) return reply === 1;
  throw unexpected("DELETE", reply);
}

/** A `READRANGE` reply as `[key, value]` pairs of bytes. */
export function toPairs(reply: RespValue): [Uint8Array, Uint8Array][] {
  if (!Array.isArray(reply) || reply.length % 2 !== 0) throw unexpected("READRANGE", reply);
  const pairs: [Uint8Array, Uint8Array][] = [];
  for (let i = 0; i < reply.length; i += 2) {
    const key = reply[i];
    const value = reply[i + 1];
    if (!(key instanceof Uint8Array) || !(value instanceof Uint8Array)) {
      throw unexpected("READRANGE", reply);
    }
    pairs.push([key, value]);
  }
  return pairs;
}

/** The `BATCHPUT` command of pairs given as `[key, value]`s or as an object. */
export function batchParts(
  pairs: Iterable<readonly [KVKey, KVValue]> | Readonly<Record<string, KVValue>>,
): CommandArgument[] {
  const parts: CommandArgument[] = ["BATCHPUT"];
  const entries = Symbol.iterator in pairs
    ? pairs as Iterable<readonly [KVKey, KVValue]>
    : Object.entries(pairs);
  for (const [key, value] of entries) parts.push(key, value);
  return parts;
}
