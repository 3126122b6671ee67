/**
 * Redis's glob patterns (`KEYS`, `SCAN ... MATCH`), matched as Redis 7's `stringmatchlen` does,
 * byte for byte: `*` any run, `?` one byte, `[abc]`, `[^abc]`, `[a-z]` (either order), `\x` the
 * byte `x` itself, an unclosed `[` taking the rest of the pattern as its set. Bytes compare as C's
 * signed `char`, as in Redis, so a range over bytes above 0x7f behaves as there. Abusive patterns
 * are cut off as Redis cuts them (a nesting bound, and no retrying of longer matches for an
 * earlier `*` once the rest failed everywhere).
 *
 * Keys and patterns are byte strings (one code unit 0–255 per byte, as the index keeps keys).
 *
 * @module
 */

/** Redis's bound on `*` nesting (a pattern past it matches nothing). */
const MAX_NESTING = 1000;

/** The byte at `i` of `text`, as C's signed `char`; 0 past the end (C's terminating NUL). */
function charAt(text: string, i: number): number {
  if (i >= text.length) return 0;
  const byte = text.charCodeAt(i);
  return byte > 127 ? byte - 256 : byte;
}

/**
 * Whether `key` matches the glob `pattern` (both byte strings), as Redis decides.
 *
 * @example
 * ```ts
 * import { globMatches } from "./glob.ts";
 * console.log(globMatches("user:[0-9]*", "user:42"), globMatches("a\\*", "ab")); // true false
 * ```
 */
export function globMatches(pattern: string, key: string): boolean {
  return match(pattern, 0, key, 0, { skipLonger: false }, 0);
}

function match(
  pattern: string,
  p: number,
  key: string,
  s: number,
  state: { skipLonger: boolean },
  nesting: number,
): boolean {
  if (nesting > MAX_NESTING) return false;
  const patternEnd = pattern.length;
  const keyEnd = key.length;
  while (p < patternEnd && s < keyEnd) {
    const c = charAt(pattern, p);
    if (c === 0x2a) { // *
      while (p + 1 < patternEnd && charAt(pattern, p + 1) === 0x2a) p++;
      if (p + 1 === patternEnd) return true;
      while (s < keyEnd) {
        if (match(pattern, p + 1, key, s, state, nesting + 1)) return true;
        if (state.skipLonger) return false;
        s++;
      }
      state.skipLonger = true;
      return false;
    } else if (c === 0x3f) { // ?
      s++;
    } else if (c === 0x5b) { // [
      const [matched, next] = matchSet(pattern, p + 1, charAt(key, s));
      if (!matched) return false;
      p = next;
      s++;
    } else {
      if (c === 0x5c && patternEnd - p >= 2) p++; // \x: the byte x
      if (charAt(pattern, p) !== charAt(key, s)) return false;
      s++;
    }
    p++;
    if (s === keyEnd) {
      while (p < patternEnd && charAt(pattern, p) === 0x2a) p++;
      break;
    }
  }
  return p === patternEnd && s === keyEnd;
}

/**
 * A `[...]` set starting at `p` (after the `[`) against the byte `c`: whether it matched, and
 * where the set ends (its `]`, or the pattern's last byte when it is not closed).
 */
function matchSet(pattern: string, p: number, c: number): [boolean, number] {
  const end = pattern.length;
  const not = charAt(pattern, p) === 0x5e; // ^
  if (not) p++;
  let matched = false;
  for (;;) {
    const here = charAt(pattern, p);
    if (here === 0x5c && end - p >= 2) { // \x inside a set
      p++;
      if (charAt(pattern, p) === c) matched = true;
    } else if (here === 0x5d && p < end) { // ]
      break;
    } else if (p >= end) {
      p--; // unclosed: the set ends with the pattern
      break;
    } else if (end - p >= 3 && charAt(pattern, p + 1) === 0x2d) { // a-z
      let low = here;
      let high = charAt(pattern, p + 2);
      if (low > high) [low, high] = [high, low];
      p += 2;
      if (c >= low && c <= high) matched = true;
    } else if (here === c) {
      matched = true;
    }
    p++;
  }
  return [not ? !matched : matched, p];
}

/**
 * The literal bytes every key matching `pattern` starts with (up to its first `*`, `?`, `[` or
 * `\`): `KEYS` and `SCAN` look only at keys in that prefix's range.
 *
 * @example
 * ```ts
 * import { literalPrefix } from "./glob.ts";
 * console.log(literalPrefix("user:1*")); // user:1
 * ```
 */
export function literalPrefix(pattern: string): string {
  let i = 0;
  while (i < pattern.length) {
    const c = pattern.charCodeAt(i);
    if (c === 0x2a || c === 0x3f || c === 0x5b || c === 0x5c) break;
    i++;
  }
  return pattern.slice(0, i);
}
