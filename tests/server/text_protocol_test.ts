import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";
import { RespErrorReply } from "../../src/protocol/resp.ts";
import { resp, WireClient } from "../helpers/wire.ts";

Deno.test("text protocol: the original's commands and replies, byte for byte", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  await wire.send(
    "PUT user:1 Ada Lovelace\n" +
      "READ user:1\n" +
      "put user:2 \n" +
      "read user:2\n" +
      "READ missing\n" +
      "BATCHPUT a||b||c 1||2 two||3\n" +
      "READRANGE a b\n" +
      "READRANGE x z\n" +
      "DELETE a\n" +
      "DELETE a\n" +
      "READRANGE a c\r\n" +
      "FROB x\n" +
      "PUT\n" +
      "PING\n",
  );
  assert.deepEqual(await wire.readLines(14), [
    "OK",
    "Ada Lovelace",
    "OK",
    "",
    "NOT_FOUND",
    "OK",
    "a||1||b||2 two",
    "NOT_FOUND",
    "OK",
    "NOT_FOUND",
    "b||2 two||c||3",
    "ERROR: Unknown command: FROB",
    "ERROR: PUT requires key",
    "PONG",
  ]);
});

Deno.test("text protocol: any value round-trips through escaping, exactly once", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  // Sent escaped: a newline, a tab, CR, a NUL byte, a literal backslash-n and a trailing backslash.
  const escaped = "line1\\nline2\\tTAB\\r\u0000 literal\\\\n end\\\\";
  await wire.send(`PUT k ${escaped}\nREAD k\nBATCHPUT k2||k3 ${escaped}||x\nREAD k2\n`);
  assert.deepEqual(await wire.readLines(4), ["OK", escaped, "OK", escaped]);
  // Stored unescaped: RESP (binary-safe) shows the raw bytes.
  await wire.send(resp("READ", "k"));
  const raw = await wire.readReply();
  assert.deepEqual(
    new TextDecoder().decode(raw as Uint8Array),
    "line1\nline2\tTAB\r\u0000 literal\\n end\\",
  );
});

Deno.test("text protocol: a newline inside a value can never become a second command", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  await wire.send(resp("SET", "v", "x\nDELETE secret"));
  assert.equal(await wire.readReply(), "OK");
  await wire.send("PUT secret 1\nREAD v\nREAD secret\n");
  assert.deepEqual(await wire.readLines(3), ["OK", "x\\nDELETE secret", "1"]);
});

Deno.test("text protocol: INFO fits on one line; PING echoes", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  await wire.send("INFO replication\nPING hello\nINFO nosuchsection\n");
  assert.deepEqual(await wire.readLines(3), ["# Replication\\nrole:master\\n", "hello", ""]);
});

Deno.test("roles: a replica refuses client writes, a master refuses REPLICATE", async () => {
  await using master = await startTestServer({ FSYNC: "no" });
  await using replica = await startTestServer({ FSYNC: "no", REPLICA: true });
  await using toMaster = await WireClient.connect(master.port);
  await toMaster.send("REPLICATE PUT k v\nREPLICATE DELETE k\n");
  assert.deepEqual(await toMaster.readLines(2), [
    "ERROR: REPLICATE commands only accepted on replica nodes",
    "ERROR: REPLICATE commands only accepted on replica nodes",
  ]);
  await using toReplica = await WireClient.connect(replica.port);
  const readOnly = "ERROR: Replica nodes are read-only. Please send writes to the master node.";
  await toReplica.send("PUT k v\nBATCHPUT a||b 1||2\nDELETE k\nREAD k\n");
  assert.deepEqual(await toReplica.readLines(4), [readOnly, readOnly, readOnly, "NOT_FOUND"]);
  await toReplica.send(resp("SET", "k", "v"));
  assert.deepEqual(
    await toReplica.readReply(),
    new RespErrorReply(
      "READONLY",
      "Replica nodes are read-only. Please send writes to the master node.",
    ),
  );
});
