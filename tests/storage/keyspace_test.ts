import assert from "node:assert/strict";
import { KeyIndex } from "../../src/storage/key_index.ts";
import { Keyspace } from "../../src/storage/keyspace.ts";
import type { Segment } from "../../src/storage/segment.ts";

Deno.test("keyspace: listeners hear a replaced index as every key, and stop when removed", () => {
  const keyspace = new Keyspace(new KeyIndex<Segment>());
  /** What a write does after it changed `key`. */
  const wrote = (key: string) => keyspace.changed?.(key);
  assert.equal(keyspace.changed, undefined, "nobody listens: a write pays one check");
  const heard: (string | undefined)[][] = [[], []];
  const stopFirst = keyspace.listen((key) => heard[0].push(key));
  const stopSecond = keyspace.listen((key) => heard[1].push(key));
  wrote("a");
  const replacement = new KeyIndex<Segment>();
  keyspace.replace(replacement);
  assert.equal(keyspace.index, replacement);
  stopFirst();
  wrote("b");
  assert.deepEqual(heard, [["a", undefined], ["a", undefined, "b"]]);
  stopSecond();
  assert.equal(keyspace.changed, undefined);
});
