/**
 * One line of etcd's watch stream, parsed without etcd: PUT and DELETE events with their keys,
 * values and revisions; a canceled or compacted watch and a line that is no result are errors.
 */
import assert from "node:assert/strict";
import { EtcdError, parseWatchLine } from "../../src/coordinator/etcd_client.ts";

const b64 = (text: string) => btoa(text);

Deno.test("watch line: events with their keys, values, revisions and leases", () => {
  const line = JSON.stringify({
    result: {
      header: { revision: "42" },
      events: [
        {
          kv: {
            key: b64("/kvstore/c1/leader"),
            value: b64("a"),
            create_revision: "40",
            mod_revision: "41",
            lease: "7",
          },
        },
        { type: "DELETE", kv: { key: b64("/kvstore/c1/members/b"), mod_revision: "42" } },
      ],
    },
  });
  const { events, revision } = parseWatchLine(line, "http://127.0.0.1:2379");
  assert.equal(revision, 42);
  assert.deepEqual(events.map((e) => [e.type, e.kv.key, e.kv.value, e.kv.modRevision]), [
    ["PUT", "/kvstore/c1/leader", "a", 41],
    ["DELETE", "/kvstore/c1/members/b", "", 42],
  ]);
  assert.equal(events[0].kv.lease, "7");
  assert.equal(events[0].kv.createRevision, 40);
});

Deno.test("watch line: the first answer (created, no events) has none", () => {
  const line = JSON.stringify({ result: { header: { revision: "9" }, created: true } });
  assert.deepEqual(parseWatchLine(line, "e"), { events: [], revision: 9 });
});

Deno.test("watch line: a canceled or compacted watch, or no result, ends the stream", () => {
  assert.throws(
    () => parseWatchLine(JSON.stringify({ result: { canceled: true } }), "e"),
    (error) => error instanceof EtcdError && /canceled \(compacted at \?\)/.test(error.message),
  );
  assert.throws(
    () => parseWatchLine(JSON.stringify({ result: { compact_revision: "5" } }), "e"),
    /compacted at 5/,
  );
  assert.throws(
    () => parseWatchLine(JSON.stringify({ error: { message: "boom" } }), "e"),
    /the watch on e failed: \{"error"/,
  );
  assert.throws(() => parseWatchLine("not json", "e"), SyntaxError);
});
