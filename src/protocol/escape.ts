/**
 * Value escaping of the text protocol, byte-compatible with the original system: on the wire a
 * value's backslash, line feed, carriage return and tab travel as `\\`, `\n`, `\r` and `\t`, so a
 * value of any bytes fits on one line. Escaping happens once when a value leaves as text and
 * unescaping once when it arrives as text; nothing else in kvstore ever sees an escaped value.
 *
 * Unescaping is one left-to-right pass: `\\` `\n` `\r` `\t` become their byte; a backslash before
 * any other byte, or at the end, stays as it is (the original's rule). Because it is one pass, a
 * value holding a literal `\n` (backslash, `n`) round-trips: it is sent as `\\n`.
 *
 * @module
 */

const BACKSLASH = 0x5c;
const LF = 0x0a;
const CR = 0x0d;
const TAB = 0x09;

/** Number of bytes `value` takes once escaped. */
export function escapedLength(value: Uint8Array): number {
  let extra = 0;
  for (let i = 0; i < value.length; i++) {
    const byte = value[i];
    if (byte === BACKSLASH || byte === LF || byte === CR || byte === TAB) extra++;
  }
  return value.length + extra;
}

/**
 * Writes `value` escaped into `out` at `offset` and returns the offset after it. `out` must have
 * room for {@link escapedLength} bytes.
 */
export function escapeInto(value: Uint8Array, out: Uint8Array, offset: number): number {
  let at = offset;
  for (let i = 0; i < value.length; i++) {
    const byte = value[i];
    if (byte === BACKSLASH) {
      out[at++] = BACKSLASH;
      out[at++] = BACKSLASH;
    } else if (byte === LF) {
      out[at++] = BACKSLASH;
      out[at++] = 0x6e; // n
    } else if (byte === CR) {
      out[at++] = BACKSLASH;
      out[at++] = 0x72; // r
    } else if (byte === TAB) {
      out[at++] = BACKSLASH;
      out[at++] = 0x74; // t
    } else {
      out[at++] = byte;
    }
  }
  return at;
}

/**
 * Escapes a value for the text protocol.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeValue } from "./escape.ts";
 * const escaped = escapeValue(new TextEncoder().encode("a\nb\\"));
 * assert.equal(new TextDecoder().decode(escaped), "a\\nb\\\\");
 * ```
 */
export function escapeValue(value: Uint8Array): Uint8Array {
  const length = escapedLength(value);
  if (length === value.length) return value.slice();
  const out = new Uint8Array(length);
  escapeInto(value, out, 0);
  return out;
}

/**
 * Unescapes a value received as text. Returns `escaped` itself (not a copy) when it holds no
 * backslash, so the common case costs no allocation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unescapeValue } from "./escape.ts";
 * const bytes = unescapeValue(new TextEncoder().encode("a\\tb\\\\n\\x"));
 * assert.equal(new TextDecoder().decode(bytes), "a\tb\\n\\x");
 * ```
 */
export function unescapeValue(escaped: Uint8Array): Uint8Array {
  const first = escaped.indexOf(BACKSLASH);
  if (first === -1) return escaped;
  const out = new Uint8Array(escaped.length);
  out.set(escaped.subarray(0, first));
  let at = first;
  for (let i = first; i < escaped.length; i++) {
    const byte = escaped[i];
    if (byte !== BACKSLASH || i + 1 === escaped.length) {
      out[at++] = byte;
      continue;
    }
    const next = escaped[i + 1];
    if (next === BACKSLASH) out[at++] = BACKSLASH;
    else if (next === 0x6e) out[at++] = LF;
    else if (next === 0x72) out[at++] = CR;
    else if (next === 0x74) out[at++] = TAB;
    else {
      out[at++] = BACKSLASH;
      out[at++] = next;
    }
    i++;
  }
  return out.subarray(0, at);
}
