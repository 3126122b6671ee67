import assert from "node:assert/strict";
import { RespErrorReply } from "../../src/protocol/resp.ts";
import { hasCommand } from "../helpers/has_command.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { resp, text, WireClient } from "../helpers/wire.ts";

Deno.test("RESP: kvstore commands and their Redis aliases", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  const binary = new Uint8Array([0, 13, 10, 255, 92, 110]);
  const requests: [Uint8Array, unknown][] = [
    [resp("PUT", "a", "1"), "OK"],
    [resp("set", "b", binary), "OK"],
    [resp("READ", "a"), "1"],
    [resp("GET", "b"), binary],
    [resp("GET", "zz"), null],
    [resp("MSET", "c", "3", "d", ""), "OK"],
    [resp("BATCHPUT", "e", "5"), "OK"],
    [resp("MGET", "a", "nope", "d"), ["1", null, ""]],
    [resp("EXISTS", "a", "b", "nope"), 2],
    [resp("DBSIZE"), 5],
    [resp("READRANGE", "a", "c"), ["a", "1", "b", binary, "c", "3"]],
    [resp("READRANGE", "x", "y"), []],
    [resp("DELETE", "a"), 1],
    [resp("DELETE", "a"), 0],
    [resp("DEL", "b", "c", "nope"), 2],
    [resp("PING"), "PONG"],
    [resp("PING", "hi"), "hi"],
    [resp("ECHO", "echo"), "echo"],
    [resp("SELECT", "0"), "OK"],
    [resp("CONFIG", "GET", "appendonly"), ["appendonly", "yes"]],
    [resp("CONFIG", "GET", "max-range-keys"), ["max-range-keys", "100000"]],
    [resp("COMMAND", "DOCS"), []],
  ];
  for (const [request] of requests) await wire.send(request);
  for (const [request, expected] of requests) {
    const reply = await wire.readReply();
    const plain = Array.isArray(reply) ? reply.map((item) => text(item)) : text(reply);
    const wanted = Array.isArray(expected)
      ? expected.map((item) => (item instanceof Uint8Array ? new TextDecoder().decode(item) : item))
      : expected instanceof Uint8Array
      ? new TextDecoder().decode(expected)
      : expected;
    assert.deepEqual(plain, wanted, new TextDecoder().decode(request));
  }
});

Deno.test("RESP: errors name the problem and keep the connection", async () => {
  await using server = await startTestServer({ FSYNC: "no", MAX_KEY_BYTES: 8 });
  await using wire = await WireClient.connect(server.port);
  await wire.send(resp("NOPE", "x"));
  await wire.send(resp("GET"));
  await wire.send(resp("SET", "k", "v", "EX", "0"));
  await wire.send(resp("SET", "a-very-long-key", "v"));
  await wire.send(resp("MSET", "a", "1", "b"));
  await wire.send(resp("REPLICATE", "PUT", "k", "v"));
  await wire.send(resp("PING"));
  assert.deepEqual(
    await wire.readReply(),
    new RespErrorReply("ERR", "unknown command 'NOPE', with args beginning with: 'x' "),
  );
  assert.deepEqual(
    await wire.readReply(),
    new RespErrorReply("ERR", "wrong number of arguments for 'get' command"),
  );
  assert.deepEqual(
    await wire.readReply(),
    new RespErrorReply("ERR", "invalid expire time in 'set' command"),
  );
  assert.deepEqual(
    await wire.readReply(),
    new RespErrorReply("ERR", "key of 15 bytes is larger than MAX_KEY_BYTES 8"),
  );
  assert.deepEqual(
    await wire.readReply(),
    new RespErrorReply("ERR", "wrong number of arguments for 'mset' command"),
  );
  assert.deepEqual(
    await wire.readReply(),
    new RespErrorReply("ERR", "REPLICATE commands only accepted on replica nodes"),
  );
  assert.equal(await wire.readReply(), "PONG");
});

Deno.test("RESP: a broken frame gets an error and the connection is closed", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  await wire.send("*1\r\n$4\r\nPINGxx");
  const rest = new TextDecoder().decode(await wire.readToEnd());
  assert.equal(rest, "-ERR Protocol error: expected CRLF after a bulk string\r\n");
  await using other = await WireClient.connect(server.port);
  await other.send(resp("PING"));
  assert.equal(await other.readReply(), "PONG");
});

Deno.test("RESP: QUIT answers OK and closes", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  await wire.send(resp("QUIT"));
  assert.equal(new TextDecoder().decode(await wire.readToEnd()), "+OK\r\n");
});

Deno.test({
  name: "redis-cli talks to kvstore",
  ignore: !hasCommand("redis-cli"),
  fn: async () => {
    await using server = await startTestServer({ FSYNC: "no" });
    const cli = (...args: string[]) =>
      new Deno.Command("redis-cli", {
        args: ["-h", "127.0.0.1", "-p", String(server.port), ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
    assert.equal(new TextDecoder().decode((await cli("SET", "k", "hello world")).stdout), "OK\n");
    assert.equal(new TextDecoder().decode((await cli("GET", "k")).stdout), "hello world\n");
    const info = new TextDecoder().decode((await cli("INFO", "storage")).stdout);
    assert.match(info, /^# Storage/);
    assert.match(info, /keys:1/);
  },
});

Deno.test({
  name: "redis-benchmark runs its SET and GET tests against kvstore",
  ignore: !hasCommand("redis-benchmark"),
  fn: async () => {
    await using server = await startTestServer({ FSYNC: "no" });
    const output = await new Deno.Command("redis-benchmark", {
      args: [
        "-h",
        "127.0.0.1",
        "-p",
        String(server.port),
        "-t",
        "set,get",
        "-n",
        "2000",
        "-c",
        "4",
        "-P",
        "4",
        "-d",
        "100",
        "-r",
        "1000",
        "-q",
        "--csv",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const csv = new TextDecoder().decode(output.stdout);
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    assert.match(csv, /"SET","[0-9.]+"/);
    assert.match(csv, /"GET","[0-9.]+"/);
    assert.ok(server.node.store.stats().keys > 0);
  },
});
