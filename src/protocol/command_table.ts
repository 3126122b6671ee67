/**
 * Case-insensitive lookup of a command word given as bytes, without turning the bytes into a
 * string: the server looks up one command per request, and a string per request is measurable
 * (see PERFORMANCE.md). Names are ASCII; any byte outside A–Z is compared as it is.
 *
 * @module
 */

/** Longest command word the table accepts; longer words are never commands. */
const MAX_NAME_BYTES = 32;

function fold(byte: number): number {
  return byte >= 0x61 && byte <= 0x7a ? byte - 0x20 : byte;
}

function hashFolded(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ fold(bytes[i]), 0x01000193);
  return hash >>> 0;
}

interface Entry<T> {
  upper: Uint8Array;
  value: T;
}

/**
 * A map from command names (matched case-insensitively) to values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CommandTable } from "./command_table.ts";
 * const table = new CommandTable([["GET", 1], ["SET", 2]]);
 * assert.equal(table.get(new TextEncoder().encode("get")), 1);
 * assert.equal(table.get(new TextEncoder().encode("gets")), undefined);
 * ```
 */
export class CommandTable<T> {
  readonly #buckets = new Map<number, Entry<T>[]>();

  constructor(entries: Iterable<readonly [string, T]> = []) {
    for (const [name, value] of entries) this.set(name, value);
  }

  /** Adds or replaces the value of `name`. */
  set(name: string, value: T): void {
    const upper = new TextEncoder().encode(name.toUpperCase());
    if (upper.length > MAX_NAME_BYTES || upper.length === 0) {
      throw new RangeError(`command name "${name}" must be 1 to ${MAX_NAME_BYTES} bytes`);
    }
    const hash = hashFolded(upper);
    const bucket = this.#buckets.get(hash) ?? [];
    const existing = bucket.find((entry) => equalFolded(entry.upper, upper));
    if (existing) existing.value = value;
    else bucket.push({ upper, value });
    this.#buckets.set(hash, bucket);
  }

  /** The value of the command word `name`, matched case-insensitively. */
  get(name: Uint8Array): T | undefined {
    if (name.length > MAX_NAME_BYTES || name.length === 0) return undefined;
    const bucket = this.#buckets.get(hashFolded(name));
    if (bucket === undefined) return undefined;
    for (const entry of bucket) {
      if (equalFolded(entry.upper, name)) return entry.value;
    }
    return undefined;
  }
}

function equalFolded(upper: Uint8Array, bytes: Uint8Array): boolean {
  if (upper.length !== bytes.length) return false;
  for (let i = 0; i < upper.length; i++) {
    if (upper[i] !== fold(bytes[i])) return false;
  }
  return true;
}

/** The command word as printable text for an error message: upper-cased, at most 64 chars. */
export function describeCommandName(name: Uint8Array): string {
  const shown = name.subarray(0, 64);
  let text = "";
  for (let i = 0; i < shown.length; i++) {
    const byte = fold(shown[i]);
    text += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : "?";
  }
  return name.length > shown.length ? `${text}...` : text;
}
