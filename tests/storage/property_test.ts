import assert from "node:assert/strict";
import fc from "fast-check";
import { KVStore } from "../../src/storage/mod.ts";
import { withTempDir } from "../helpers/storage.ts";

type Command =
  | { op: "put"; key: string; value: string }
  | { op: "batch"; pairs: [string, string][] }
  | { op: "delete"; key: string }
  | { op: "range"; start: string; end: string; limit: number }
  | { op: "reopen" }
  | { op: "compact" };

// Few distinct keys, so overwrites and deletes of existing keys are common; bytes 0-255.
const key = fc.constantFrom("", "a", "ab", "b", "\x00", "\x7f", "\x80", "\xff", "zz", "m");
const value = fc.string({ maxLength: 40 });
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant("put" as const), key, value }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("batch" as const),
      pairs: fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 4 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("delete" as const), key }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("range" as const),
      start: key,
      end: key,
      limit: fc.integer({ min: 1, max: 12 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: "reopen" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "compact" as const }) },
);

const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);
const toBytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);

Deno.test("property: the store behaves like a Map through reopen and compaction", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(command, { maxLength: 60 }), async (commands) => {
      await withTempDir(async (dir) => {
        const options = { segmentSizeBytes: 4096, compactionMinBytes: 0 };
        let store = await KVStore.open(dir, options);
        const model = new Map<string, string>();
        try {
          for (const c of commands) {
            if (c.op === "put") {
              store.writePut(toBytes(c.key), c.value);
              model.set(latin1(toBytes(c.key)), c.value);
            } else if (c.op === "batch") {
              store.writeBatch(c.pairs.map(([k, v]) => [toBytes(k), v]));
              for (const [k, v] of c.pairs) model.set(latin1(toBytes(k)), v);
            } else if (c.op === "delete") {
              const existed = model.delete(latin1(toBytes(c.key)));
              assert.equal(store.has(toBytes(c.key)), existed);
              store.writeDelete(toBytes(c.key));
            } else if (c.op === "range") {
              const expected = [...model.keys()].filter((k) => k >= c.start && k <= c.end).sort()
                .slice(0, c.limit);
              const got = store.readRange(toBytes(c.start), toBytes(c.end), { limit: c.limit });
              assert.deepEqual(got.map(([k]) => latin1(k)), expected);
              got.forEach(([k, v]) => {
                assert.equal(new TextDecoder().decode(v), model.get(latin1(k)));
              });
            } else if (c.op === "reopen") {
              await store.close();
              store = await KVStore.open(dir, options);
            } else {
              await store.compact();
            }
          }
          await store.close();
          store = await KVStore.open(dir, options);
          assert.equal(store.size, model.size);
          for (const [k, v] of model) {
            assert.equal(new TextDecoder().decode(store.read(toBytes(k))), v);
          }
        } finally {
          await store.close();
        }
      });
    }),
    { numRuns: 120 },
  );
});

type PutCommand =
  | { op: "put"; key: string; value: string; ttl: boolean }
  | { op: "batch" | "multi"; pairs: [string, string][] }
  | { op: "reopen" }
  | { op: "compact"; during: number };

// Puts, batches and MULTIs (no deletes) of a few hot keys with values long enough to fill 4 KiB
// segments: sealed segments are mostly dead, so compaction finds their live records through the
// index (puts only) or checks just the records holding them (with batches or MULTIs).
const putCommand: fc.Arbitrary<PutCommand> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.record({
      op: fc.constant("put" as const),
      key,
      value: fc.string({ minLength: 20, maxLength: 300 }),
      ttl: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constantFrom("batch" as const, "multi" as const),
      pairs: fc.array(fc.tuple(key, fc.string({ minLength: 20, maxLength: 200 })), {
        minLength: 1,
        maxLength: 3,
      }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: "reopen" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("compact" as const),
      during: fc.integer({ min: 0, max: 5 }),
    }),
  },
);

Deno.test("property: puts, batches and MULTIs of hot keys keep values and TTLs through compaction through the index", async () => {
  let fromIndex = 0;
  const expiresAt = Date.now() + 3_600_000;
  await fc.assert(
    fc.asyncProperty(fc.array(putCommand, { minLength: 60, maxLength: 150 }), async (commands) => {
      await withTempDir(async (dir) => {
        // Small steps: a compaction yields often, and the puts `during` it land between steps.
        const options = {
          segmentSizeBytes: 4096,
          compactionMinBytes: 0,
          autoCompact: false,
          compactionChunkBytes: 256,
        };
        let store = await KVStore.open(dir, options);
        const model = new Map<string, [string, number]>();
        const put = (c: PutCommand, i: number) => {
          if (c.op === "put") {
            const expiry = c.ttl ? expiresAt + i : 0;
            store.writePut(toBytes(c.key), c.value, expiry);
            model.set(latin1(toBytes(c.key)), [c.value, expiry]);
          } else if (c.op === "batch") {
            store.writeBatch(c.pairs.map(([k, v]) => [toBytes(k), v]));
            for (const [k, v] of c.pairs) model.set(latin1(toBytes(k)), [v, 0]);
          } else if (c.op === "multi") {
            store.atomically(() => {
              for (const [k, v] of c.pairs) store.writePut(toBytes(k), v, expiresAt + i);
            });
            for (const [k, v] of c.pairs) model.set(latin1(toBytes(k)), [v, expiresAt + i]);
          }
        };
        const check = () => {
          assert.equal(store.size, model.size);
          for (const [k, [v, expiry]] of model) {
            assert.equal(new TextDecoder().decode(store.read(toBytes(k))), v);
            assert.equal(store.expiresAtMs(toBytes(k)), expiry);
          }
        };
        try {
          for (let i = 0; i < commands.length; i++) {
            const c = commands[i];
            if (c.op === "reopen") {
              await store.close();
              store = await KVStore.open(dir, options);
            } else if (c.op === "compact") {
              const compaction = store.compact();
              // The next puts run while it copies (each waits a turn).
              for (let j = 0; j < c.during && i + 1 < commands.length; j++) {
                const next = commands[i + 1];
                if (next.op === "reopen" || next.op === "compact") break;
                i++;
                put(next, i);
                await new Promise((resolve) => setTimeout(resolve, 0));
              }
              fromIndex += (await compaction).segmentsFromIndex;
              check();
            } else put(c, i);
          }
          await store.close();
          store = await KVStore.open(dir, options);
          check();
        } finally {
          await store.close();
        }
      });
    }),
    { numRuns: 40, endOnFailure: true },
  );
  assert.ok(fromIndex > 0, "some segments were compacted through the index");
});
