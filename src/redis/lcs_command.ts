/**
 * `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`, as Redis 7 answers it: the
 * longest common subsequence of two strings by the same dynamic programme and the same walk back
 * (so ties pick the same subsequence and the same ranges), an absent key read as "".
 *
 * The table holds (len1 + 1) × (len2 + 1) u32 cells; past `LCS_MAX_BYTES` of them the command is
 * refused before anything is allocated (Redis refuses past proto-max-bulk-len, 512 MiB; kvstore
 * also bounds the time one request holds the event loop: a table of 64 MiB takes ~0.1 s).
 *
 * @module
 */
import { SYNTAX_ERROR } from "../protocol/mod.ts";
import type { Reply, ReplyWriter } from "../protocol/mod.ts";
import type { CommandContext, CommandSpec } from "../server/hooks.ts";
import { parseLongLong } from "./arguments.ts";
import { answer } from "./string_access.ts";

const encoder = new TextEncoder();

function integer(value: number): Reply {
  return { type: "integer", value };
}

function range(start: number, end: number): Reply {
  return { type: "array", items: [integer(start), integer(end)] };
}

/** What LCS's options ask for; a string is Redis's error. */
function parseOptions(
  args: Uint8Array[],
): { len: boolean; idx: boolean; withMatchLen: boolean; minMatchLen: number } | string {
  const o = { len: false, idx: false, withMatchLen: false, minMatchLen: 0 };
  for (let j = 2; j < args.length; j++) {
    const word = new TextDecoder().decode(args[j]).toUpperCase();
    const moreArgs = args.length - 1 - j;
    if (word === "IDX") o.idx = true;
    else if (word === "LEN") o.len = true;
    else if (word === "WITHMATCHLEN") o.withMatchLen = true;
    else if (word === "MINMATCHLEN" && moreArgs > 0) {
      const value = parseLongLong(args[++j]);
      if (value === undefined) return "value is not an integer or out of range";
      o.minMatchLen = value < 0n ? 0 : Number(value);
    } else return SYNTAX_ERROR;
  }
  if (o.idx && o.len) return "If you want both the length and indexes, please just use IDX.";
  return o;
}

/** What the walk back over the table finds: the subsequence and its matching ranges. */
interface LcsResult {
  total: number;
  result: Uint8Array;
  matches: Reply[];
}

/**
 * The longest common subsequence of `a` and `b` by Redis's dynamic programme and walk back (so
 * ties pick the same subsequence and ranges); with `options.len` only the length is computed.
 */
function longestCommon(
  a: Uint8Array,
  b: Uint8Array,
  options: { len: boolean; withMatchLen: boolean; minMatchLen: number },
): LcsResult {
  const alen = a.length;
  const blen = b.length;
  const width = alen + 1;
  const dp = new Uint32Array(width * (blen + 1));
  for (let j = 1; j <= blen; j++) {
    for (let i = 1; i <= alen; i++) {
      dp[i + j * width] = a[i - 1] === b[j - 1]
        ? dp[i - 1 + (j - 1) * width] + 1
        : Math.max(dp[i - 1 + j * width], dp[i + (j - 1) * width]);
    }
  }
  const total = dp[alen + blen * width];
  const result = new Uint8Array(options.len ? 0 : total);
  const matches: Reply[] = [];
  if (options.len) return { total, result, matches };
  let idx = total;
  let i = alen;
  let j = blen;
  let aStart = alen, aEnd = 0, bStart = 0, bEnd = 0;
  // Redis's walk back, step for step.
  while (i > 0 && j > 0) {
    let emit = false;
    if (a[i - 1] === b[j - 1]) {
      result[idx - 1] = a[i - 1];
      if (aStart === alen) {
        aStart = aEnd = i - 1;
        bStart = bEnd = j - 1;
      } else if (aStart === i && bStart === j) {
        aStart--;
        bStart--;
      } else emit = true;
      if (aStart === 0 || bStart === 0) emit = true;
      idx--;
      i--;
      j--;
    } else {
      if (dp[i - 1 + j * width] > dp[i + (j - 1) * width]) i--;
      else j--;
      if (aStart !== alen) emit = true;
    }
    if (emit) {
      const matchLen = aEnd - aStart + 1;
      if (options.minMatchLen === 0 || matchLen >= options.minMatchLen) {
        const items = [range(aStart, aEnd), range(bStart, bEnd)];
        if (options.withMatchLen) items.push(integer(matchLen));
        matches.push({ type: "array", items });
      }
      aStart = alen;
    }
  }
  return { total, result, matches };
}

function lcs(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const { store, commit, config } = ctx.node;
  const a = store.read(args[0]) ?? new Uint8Array(0);
  const b = store.read(args[1]) ?? new Uint8Array(0);
  const pending = Math.max(commit.pendingLsn(args[0]), commit.pendingLsn(args[1]));
  const options = parseOptions(args);
  if (typeof options === "string") return out.error(options);
  const alen = a.length;
  const blen = b.length;
  const tableBytes = (alen + 1) * (blen + 1) * 4;
  if (tableBytes > config.LCS_MAX_BYTES) {
    return out.error(
      `LCS of ${alen} and ${blen} bytes needs a ${tableBytes}-byte table, more than LCS_MAX_BYTES ` +
        `(${config.LCS_MAX_BYTES})`,
    );
  }
  const { total, result, matches } = longestCommon(a, b, options);
  if (options.len) return answer(ctx, out, integer(total), 0, pending);
  if (!options.idx) return answer(ctx, out, { type: "value", value: result }, 0, pending);
  const reply: Reply = {
    type: "map",
    entries: [
      [{ type: "value", value: encoder.encode("matches") }, { type: "array", items: matches }],
      [{ type: "value", value: encoder.encode("len") }, integer(total)],
    ],
  };
  return answer(ctx, out, reply, 0, pending);
}

/** `LCS`, by its name. */
export const LCS_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ["LCS", { minArgs: 2, maxArgs: Infinity, handler: lcs }],
]);
