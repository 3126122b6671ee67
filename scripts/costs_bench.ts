/**
 * Re-measures the figures behind small hot-path choices, the "Measured costs" decision in
 * docs/ARCHITECTURE.md: each group sets the choice the code made against what it avoids.
 *
 * ```sh
 * deno bench --allow-read --allow-write scripts/costs_bench.ts
 * ```
 *
 * Figures printed by `deno bench` are per call, on this machine and runtime; compare within one
 * run (a loaded machine moves both sides). Nothing here is a test: nothing fails on a number.
 *
 * @module
 */
import assert from "node:assert/strict";
import { closeSync, fdatasyncSync, ftruncateSync, openSync, writeSync } from "node:fs";
import { upper } from "../src/replication/replica_applier.ts";
import { KeyIndex } from "../src/storage/key_index.ts";
import { SortedKeys } from "../src/storage/sorted_keys.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// --- Index at 1,000,000 keys: a key string V8 has not hashed, through a Map and the index ----

const FRESH_KEYS = 1_000_000;
let freshKey = 0;
/** A key string V8 has not hashed yet: built from its parts at each call. */
function nextFreshKey(): string {
  freshKey = (freshKey + 1) % FRESH_KEYS;
  return "key:" + String(freshKey).padStart(10, "0");
}
const map = new Map<string, number>();
const index = new KeyIndex<object>();
const segment = {};
for (let i = 0; i < FRESH_KEYS; i++) {
  const key = "key:" + String(i).padStart(10, "0");
  map.set(key, i);
  index.insert(key, segment, i, 100);
}

Deno.bench("unseen key string: Map.get", { group: "key lookup", baseline: true }, () => {
  assert.ok(map.get(nextFreshKey()) !== undefined);
});
Deno.bench("unseen key string: KeyIndex.find", { group: "key lookup" }, () => {
  assert.ok(index.find(nextFreshKey()) >= 0);
});

// --- Walking every key in order: the chunks against the generator ----------------------------

const SORTED_SLOTS = 1_000_000;
const sortedKeyStrings = Array.from(
  { length: SORTED_SLOTS },
  (_, i) => "k" + String(i).padStart(8, "0"),
);
const sorted = SortedKeys.fromSorted(
  sortedKeyStrings,
  Array.from({ length: SORTED_SLOTS }, (_, i) => i),
);

Deno.bench("1,000,000 slots: loop over chunks()", { group: "walk", baseline: true }, () => {
  let sum = 0;
  for (const chunk of sorted.chunks()) for (let i = 0; i < chunk.length; i++) sum += chunk[i];
  assert.ok(sum > 0);
});
Deno.bench("1,000,000 slots: slots() generator", { group: "walk" }, () => {
  let sum = 0;
  for (const slot of sorted.slots()) sum += slot;
  assert.ok(sum > 0);
});

// --- A value returned by a read: a view of a shared block against its own array -------------

const block = new Uint8Array(8 * 1024);
let blockAt = 0;
Deno.bench("100-byte value: view of a shared block", { group: "value", baseline: true }, () => {
  blockAt = blockAt + 100 > block.length ? 0 : blockAt + 100;
  block.subarray(blockAt, blockAt + 100);
});
Deno.bench("100-byte value: new Uint8Array(100)", { group: "value" }, () => {
  new Uint8Array(100);
});

// --- An ASCII key: its own byte string against a TextEncoder call ---------------------------

const asciiKey = "user:123456789";
Deno.bench("14-character key: TextEncoder.encode", { group: "key bytes" }, () => {
  encoder.encode(asciiKey);
});

// --- Durability: one shared promise per network read against three --------------------------

Deno.bench("one promise per read", { group: "promises", baseline: true }, async () => {
  const { promise, resolve } = Promise.withResolvers<void>();
  resolve();
  await promise;
});
Deno.bench("three promises per read", { group: "promises" }, async () => {
  const all: Promise<void>[] = [];
  for (let i = 0; i < 3; i++) {
    const { promise, resolve } = Promise.withResolvers<void>();
    resolve();
    all.push(promise);
  }
  for (const promise of all) await promise;
});

// --- put: the durability promise returned as is, against an async frame ---------------------

const durable = Promise.resolve(1);
function putPlain(): Promise<number> {
  return durable;
}
async function putAsync(): Promise<number> {
  const lsn = await durable;
  return lsn;
}
Deno.bench("put: return the durability promise", { group: "put", baseline: true }, async () => {
  await putPlain();
});
Deno.bench("put: async function", { group: "put" }, async () => {
  await putAsync();
});

// --- Invariants on every batch: `if` first against assert.ok ---------------------------------

let lsnA = 1;
let lsnB = 2;
Deno.bench("invariant: if, then assert.fail", { group: "assert", baseline: true }, () => {
  lsnA++;
  lsnB++;
  if (lsnB < lsnA) assert.fail(`LSN went back to ${lsnB}`);
});
Deno.bench("invariant: assert.ok with its message", { group: "assert" }, () => {
  lsnA++;
  lsnB++;
  assert.ok(lsnB >= lsnA, `LSN went back to ${lsnB}`);
});

// --- Timers per write ------------------------------------------------------------------------

Deno.bench("setTimeout + clearTimeout pair", { group: "timer" }, () => {
  clearTimeout(setTimeout(() => {}, 5000));
});

// --- LOG frame header: digits written by hand into a reused buffer ---------------------------

const frame = new Uint8Array(4096);
function writeDigits(out: Uint8Array, at: number, value: number): number {
  const text = String(value);
  for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  return at + text.length;
}
let frameBytes = 1_000_000;
Deno.bench("frame length digits: into a reused buffer", {
  group: "frame",
  baseline: true,
}, () => {
  writeDigits(frame, 0, frameBytes++);
});
Deno.bench("frame length digits: TextEncoder.encode", { group: "frame" }, () => {
  frame.set(encoder.encode(String(frameBytes++)), 0);
});
Deno.bench("frame: a new array of 4 KiB", { group: "frame" }, () => {
  new Uint8Array(4096);
});

// --- REPLICATE subcommand word -----------------------------------------------------------------

const word = encoder.encode("log");
Deno.bench("subcommand: upper() loop", { group: "upper", baseline: true }, () => {
  upper(word);
});
Deno.bench("subcommand: TextDecoder + toUpperCase", { group: "upper" }, () => {
  decoder.decode(word).toUpperCase();
});

// --- A record's key and LSN written into the pending buffer ------------------------------------

const pending = new Uint8Array(1 << 20);
const pendingView = new DataView(pending.buffer);
const recordKey = encoder.encode("ctr:000000012345");
let recordAt = 0;
/** The next record's place: 53 bytes on, as an INCR's records are. */
function nextRecordAt(): number {
  recordAt = recordAt + 53 > pending.length - 64 ? 0 : recordAt + 53;
  return recordAt;
}

Deno.bench("16-byte key: copied by a loop", { group: "key copy", baseline: true }, () => {
  const at = nextRecordAt();
  for (let i = 0; i < recordKey.length; i++) pending[at + i] = recordKey[i];
});
Deno.bench("16-byte key: Uint8Array.set", { group: "key copy" }, () => {
  pending.set(recordKey, nextRecordAt());
});

const TWO_32 = 2 ** 32;
let recordLsn = 123_456_789;
Deno.bench("u64 LSN: low word by >>> 0", { group: "u64", baseline: true }, () => {
  const at = nextRecordAt();
  const lsn = recordLsn++;
  const low = lsn >>> 0;
  pendingView.setUint32(at, low, true);
  pendingView.setUint32(at + 4, (lsn - low) / TWO_32, true);
});
Deno.bench("u64 LSN: % and Math.floor", { group: "u64" }, () => {
  const at = nextRecordAt();
  const lsn = recordLsn++;
  pendingView.setUint32(at, lsn % TWO_32, true);
  pendingView.setUint32(at + 4, Math.floor(lsn / TWO_32), true);
});

// --- An integer reply's digits: 32-bit division against a float floor ------------------------

const replyDigits = new Uint8Array(32);
let replyValue = 100_000;
/** Writes the digits of `value` (0 to 2^53) into `replyDigits`, dividing by `tenth`. */
function writeReplyDigits(value: number, tenth: (n: number) => number): void {
  let at = 20;
  let rest = value;
  do {
    const next = tenth(rest);
    replyDigits[--at] = 0x30 + (rest - next * 10);
    rest = next;
  } while (rest > 0);
}

Deno.bench("6-digit integer: 32-bit division", { group: "digits", baseline: true }, () => {
  writeReplyDigits(replyValue++, (n) => n <= 0x7fff_ffff ? (n / 10) | 0 : Math.floor(n / 10));
});
Deno.bench("6-digit integer: Math.floor(n / 10)", { group: "digits" }, () => {
  writeReplyDigits(replyValue++, (n) => Math.floor(n / 10));
});

// --- fdatasync after a 3.3 KB append: growing the file against writing into zeros -----------

const dir = Deno.makeTempDirSync({ prefix: "kvstore-costs-" });
const RECORD_BYTES = 3300;
const ZEROED_BYTES = 64 * 1024 * 1024;
const record = new Uint8Array(RECORD_BYTES).fill(7);
const appendFd = openSync(`${dir}/append.log`, "w");
const zeroedFd = openSync(`${dir}/zeroed.log`, "w");
let appendAt = 0;
let zeroedAt = 0;
/** Zero-fills the file for real (not a sparse hole) and makes its size durable. */
function zeroFill(fd: number): void {
  const zeros = new Uint8Array(1024 * 1024);
  for (let at = 0; at < ZEROED_BYTES; at += zeros.length) writeSync(fd, zeros, 0, zeros.length, at);
  fdatasyncSync(fd);
}
zeroFill(zeroedFd);

Deno.bench("3.3 KB + fdatasync: into zeros", { group: "fdatasync", baseline: true }, () => {
  if (zeroedAt + RECORD_BYTES > ZEROED_BYTES) zeroedAt = 0;
  writeSync(zeroedFd, record, 0, RECORD_BYTES, zeroedAt);
  zeroedAt += RECORD_BYTES;
  fdatasyncSync(zeroedFd);
});
Deno.bench("3.3 KB + fdatasync: appending (file grows)", { group: "fdatasync" }, () => {
  if (appendAt + RECORD_BYTES > ZEROED_BYTES) {
    ftruncateSync(appendFd, 0);
    appendAt = 0;
  }
  writeSync(appendFd, record, 0, RECORD_BYTES, appendAt);
  appendAt += RECORD_BYTES;
  fdatasyncSync(appendFd);
});

globalThis.addEventListener("unload", () => {
  closeSync(appendFd);
  closeSync(zeroedFd);
  Deno.removeSync(dir, { recursive: true });
});
