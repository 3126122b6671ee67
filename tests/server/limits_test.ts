import assert from "node:assert/strict";
import { RespErrorReply } from "../../src/protocol/resp.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { resp, WireClient } from "../helpers/wire.ts";

const TOO_LARGE = "request is larger than MAX_REQUEST_BYTES (4096 bytes)";

Deno.test("MAX_REQUEST_BYTES: a long text line gets an ERROR and the connection goes on", async () => {
  await using server = await startTestServer({
    FSYNC: "no",
    MAX_REQUEST_BYTES: 4096,
    MAX_KEY_BYTES: 1024,
  });
  await using wire = await WireClient.connect(server.port);
  await wire.send(`PUT big ${"x".repeat(100_000)}\nPUT small ok\nREAD small\n`);
  assert.deepEqual(await wire.readLines(3), [`ERROR: ${TOO_LARGE}`, "OK", "ok"]);
  assert.equal(server.node.store.has("big"), false);
});

Deno.test("MAX_REQUEST_BYTES: a large RESP bulk is skipped by its declared length", async () => {
  await using server = await startTestServer({
    FSYNC: "no",
    MAX_REQUEST_BYTES: 4096,
    MAX_KEY_BYTES: 1024,
  });
  await using wire = await WireClient.connect(server.port);
  const big = resp("SET", "big", "\r\n*1\r\n$4\r\nQUIT\r\n".repeat(1000));
  for (let i = 0; i < big.length; i += 1000) await wire.send(big.subarray(i, i + 1000));
  await wire.send(resp("PING"));
  assert.deepEqual(await wire.readReply(), new RespErrorReply("ERR", TOO_LARGE));
  assert.equal(await wire.readReply(), "PONG");
  assert.equal(server.node.store.has("big"), false);
});

Deno.test("MAX_RANGE_KEYS: a wider READRANGE gets an ERROR naming the limit", async () => {
  await using server = await startTestServer({ FSYNC: "no", MAX_RANGE_KEYS: 3 });
  await using wire = await WireClient.connect(server.port);
  await wire.send("BATCHPUT a||b||c||d 1||2||3||4\nREADRANGE a c\nREADRANGE a d\n");
  assert.deepEqual(await wire.readLines(3), [
    "OK",
    "a||1||b||2||c||3",
    "ERROR: READRANGE matched more than MAX_RANGE_KEYS (3) keys; narrow the range or raise " +
    "--max-range-keys",
  ]);
});

Deno.test("MAX_RANGE_BYTES: a READRANGE holding more bytes gets an ERROR naming the limit", async () => {
  await using server = await startTestServer({ FSYNC: "no", MAX_RANGE_BYTES: 1024 });
  await using wire = await WireClient.connect(server.port);
  // Keys "a" and "b" with 500-byte values: 1002 bytes fit the budget, adding "c" does not.
  const value = "v".repeat(500);
  await wire.send(`BATCHPUT a||b||c ${value}||${value}||${value}\nREADRANGE a b\nREADRANGE a c\n`);
  const [batch, fits, refused] = await wire.readLines(3);
  assert.equal(batch, "OK");
  assert.equal(fits, `a||${value}||b||${value}`);
  assert.equal(
    refused,
    "ERROR: READRANGE matched more than MAX_RANGE_BYTES (1024) bytes of keys and values; " +
      "narrow the range or raise --max-range-bytes",
  );
});

Deno.test("MAX_CONNECTIONS: extra connections get an ERROR line, are closed, and it is logged", async () => {
  await using server = await startServerProcess({
    args: ["--max-connections", "2", "--fsync", "no"],
  });
  await using first = await WireClient.connect(server.port);
  await using second = await WireClient.connect(server.port);
  await first.send("PING\n");
  await second.send("PING\n");
  assert.equal(await first.readLine(), "PONG");
  assert.equal(await second.readLine(), "PONG");
  for (let i = 0; i < 3; i++) {
    await using extra = await WireClient.connect(server.port);
    assert.equal(
      new TextDecoder().decode(await extra.readToEnd()),
      "ERROR: too many connections (MAX_CONNECTIONS is 2); try again later\n",
    );
  }
  const logged = await server.waitForLog((line) => line.properties.setting === "MAX_CONNECTIONS");
  assert.equal(logged.properties.limit, 2);
  assert.equal(logged.level, "WARN");
  // Logged once, not once per refused connection.
  assert.equal(
    server.logs.filter((line) => line.properties.setting === "MAX_CONNECTIONS").length,
    1,
  );
  first.close();
  await second.send("INFO clients\n");
  assert.match(await second.readLine(), /rejected_connections:3/);
  // A closed slot is usable again.
  await using later = await connectWhenFree(server.port);
  await later.send("PING\n");
  assert.equal(await later.readLine(), "PONG");
  assert.equal((await server.stop()).code, 0);
});

/** Connects until the server accepts (it notices a closed connection asynchronously). */
async function connectWhenFree(port: number): Promise<WireClient> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const wire = await WireClient.connect(port);
    await wire.send("PING\n");
    const line = await wire.readLine();
    if (line === "PONG") return wire;
    wire.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("the server never accepted another connection");
}
