/**
 * A malformed `REPLICATE` (a bad subcommand, missing fields) is a bad request: answered with an
 * error that names it, logged once a minute as a warning with the peer, never as an internal
 * error with a stack trace per request.
 */
import assert from "node:assert/strict";
import { startServerProcess } from "../helpers/server_process.ts";
import { WireClient } from "../helpers/wire.ts";

Deno.test("a bad REPLICATE subcommand is refused as a bad request and logged once per interval", async () => {
  await using replica = await startServerProcess({ args: ["--replica", "--fsync", "no"] });
  await using wire = await WireClient.connect(replica.port);
  const count = 50;
  await wire.send("REPLICATE FOO bar\n".repeat(count) + "REPLICATE SNAPSHOT NOPE\nPING\n");
  const replies = await wire.readLines(count + 2);
  assert.equal(
    replies[0],
    'ERROR: unknown REPLICATE subcommand "FOO" (PUT, BATCHPUT, DELETE, or the master\'s ' +
      "HELLO, COMPRESS, FILTER, LOG, LOGZ, PING, SNAPSHOT)",
  );
  assert.equal(new Set(replies.slice(0, count)).size, 1);
  assert.equal(replies[count], "ERROR: REPLICATE SNAPSHOT before REPLICATE HELLO");
  assert.equal(replies[count + 1], "PONG");
  await replica.waitForLog((line) => line.properties.event === "bad_replicate");
  const logged = replica.logs.filter((line) =>
    line.properties.event === "bad_replicate" || line.level === "ERROR" ||
    /Internal error|failed: .*at /.test(line.message)
  );
  assert.equal(logged.length, 1, JSON.stringify(logged));
  assert.equal(logged[0].level, "WARN");
  assert.match(String(logged[0].properties.peer), /^127\.0\.0\.1:\d+$/);
  assert.ok(!String(logged[0].properties.error).includes("    at "), "no stack trace");
});
