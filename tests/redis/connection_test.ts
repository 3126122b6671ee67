/**
 * The connection side of kvstore's Redis dialect, in-process and with real processes: RESP3 after
 * HELLO 3, the RESP-only port and its inline commands within every bound, the main port's text
 * protocol unchanged, CLIENT KILL refused for the replication link, RESET and authentication.
 */
import assert from "node:assert/strict";
import { authExtension } from "../../src/security/auth_extension.ts";
import {
  CLUSTER_TEST,
  FAST_FAILURE_FLAGS,
  KvNode,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { call, decodeReply, RawRespConnection, render } from "../helpers/resp3.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { WireClient } from "../helpers/wire.ts";

Deno.test("HELLO 3: this reply and later ones are RESP3; HELLO 2 goes back; text gets one line", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using conn = await RawRespConnection.open(server.port);
  await conn.send(["HELLO", "3", "SETNAME", "app-1"]);
  const hello = decodeReply(await conn.readReply());
  assert.ok(hello instanceof Map);
  assert.equal(hello.get("proto"), 3);
  assert.equal(hello.get("server"), "redis");
  assert.equal(hello.get("role"), "master");
  await conn.send(["GET", "missing"]);
  assert.equal(render(await conn.readReply()), "_\\r\\n");
  const info = await call(conn, "INFO", "server");
  assert.ok(typeof info === "object" && info !== null && "verbatim" in info);
  assert.match(info.verbatim, /^# Server\r\nredis_version:7\.0\.15\r\n/);
  await conn.send(["HELLO", "2"]);
  assert.match(render(await conn.readReply()), /^\*14\\r\\n/);
  await conn.send(["GET", "missing"]);
  assert.equal(render(await conn.readReply()), "$-1\\r\\n");
  // The text protocol on the same port is untouched: one line per request.
  await using text = await WireClient.connect(server.port);
  await text.send("HELLO 3\nPING\nCLIENT GETNAME\n");
  const [helloLine, pong, name] = await text.readLines(3);
  assert.match(helloLine, /^server\|\|redis\|\|version\|\|7\.0\.15\|\|proto\|\|3\|\|id\|\|\d+/);
  assert.deepEqual([pong, name], ["PONG", "NOT_FOUND"]);
});

Deno.test("the main port keeps the text protocol: an inline PING gets the text reply", async () => {
  await using server = await startTestServer({ FSYNC: "no", RESP_ENABLED: true, RESP_PORT: 0 });
  await using main = await WireClient.connect(server.port);
  await main.send("PING\r\nPUT k a b\r\nREAD k\r\n");
  assert.deepEqual(await main.readLines(3), ["PONG", "OK", "a b"]);
  assert.ok(server.respPort !== undefined && server.respPort !== server.port);
  await using resp = await RawRespConnection.open(server.respPort);
  await resp.send(new TextEncoder().encode('PING\r\nSET k2 "x y"\r\nGET k2\r\nGET k\r\n'));
  const replies: string[] = [];
  for (let i = 0; i < 4; i++) replies.push(render(await resp.readReply()));
  assert.deepEqual(replies, ["+PONG\\r\\n", "+OK\\r\\n", "$3\\r\\nx y\\r\\n", "$3\\r\\na b\\r\\n"]);
});

Deno.test("RESP port: a 1 GB inline line is refused at MAX_INLINE_REQUEST_BYTES and the connection closed", async () => {
  await using server = await startTestServer({
    FSYNC: "no",
    RESP_ENABLED: true,
    RESP_PORT: 0,
    MAX_INLINE_REQUEST_BYTES: 64 * 1024,
  });
  const port = server.respPort;
  assert.ok(port !== undefined);
  await using conn = await RawRespConnection.open(port);
  const chunk = new Uint8Array(1024 * 1024).fill(0x61);
  let sentBytes = 0;
  // Send until the server closes (it must, long before 1 GB).
  try {
    while (sentBytes < 1024 * 1024 * 1024) {
      await conn.send(chunk);
      sentBytes += chunk.length;
    }
  } catch {
    // The server closed the connection while we were still sending.
  }
  assert.ok(sentBytes < 64 * 1024 * 1024, `sent ${sentBytes} bytes before the server closed`);
  assert.equal(
    render(await conn.readReply()),
    "-ERR Protocol error: too big inline request\\r\\n",
  );
  assert.ok(await conn.closesWithin());
  assert.ok(server.node.stats.clientMemoryBytes < 8 * 1024 * 1024);
  // The server is fine.
  await using other = await RawRespConnection.open(port);
  assert.equal(await call(other, "PING"), "PONG");
});

Deno.test("RESP port: requests past MAX_REQUEST_ELEMENTS and MAX_REQUEST_BYTES are refused and skipped", async () => {
  await using server = await startTestServer({
    FSYNC: "no",
    RESP_ENABLED: true,
    RESP_PORT: 0,
    MAX_REQUEST_ELEMENTS: 16,
    MAX_REQUEST_BYTES: 4096,
    MAX_KEY_BYTES: 1024,
  });
  const port = server.respPort;
  assert.ok(port !== undefined);
  await using conn = await RawRespConnection.open(port);
  await conn.send(["MGET", ...Array.from({ length: 20 }, (_, i) => `k${i}`)]);
  assert.match(
    render(await conn.readReply()),
    /^-ERR request has 21 words, more than MAX_REQUEST_ELEMENTS/,
  );
  await conn.send(["SET", "k", "v".repeat(5000)]);
  assert.match(render(await conn.readReply()), /^-ERR request is larger than MAX_REQUEST_BYTES/);
  const words = Array.from({ length: 20 }, (_, i) => `w${i}`).join(" ");
  await conn.send(new TextEncoder().encode(`MGET ${words}\r\n`));
  assert.match(render(await conn.readReply()), /MAX_REQUEST_ELEMENTS/);
  assert.equal(await call(conn, "PING"), "PONG");
  // A "huge map" is no request type: Redis reads the line as an inline command, so do we.
  await conn.send(new TextEncoder().encode("%1000000000\r\n"));
  assert.equal(
    render(await conn.readReply()),
    "-ERR unknown command '%1000000000', with args beginning with: \\r\\n",
  );
  await conn.send(new TextEncoder().encode("*1000000000\r\n"));
  assert.equal(
    render(await conn.readReply()),
    "-ERR Protocol error: invalid multibulk length\\r\\n",
  );
  assert.ok(await conn.closesWithin());
});

Deno.test("RESP port: an unauthenticated connection gets the small request bound and NOAUTH", async () => {
  const token = "client-token-0123456789";
  await using server = await startTestServer(
    {
      FSYNC: "no",
      RESP_ENABLED: true,
      RESP_PORT: 0,
      MAX_UNAUTHENTICATED_REQUEST_BYTES: 1024,
    },
    { extensions: [authExtension({ client: token, replication: token })] },
  );
  const port = server.respPort;
  assert.ok(port !== undefined);
  await using conn = await RawRespConnection.open(port);
  await conn.send(new TextEncoder().encode("GET k\r\n"));
  assert.equal(render(await conn.readReply()), "-NOAUTH Authentication required.\\r\\n");
  await conn.send(["ECHO", "x".repeat(2000)]);
  assert.match(render(await conn.readReply()), /MAX_UNAUTHENTICATED_REQUEST_BYTES/);
  await conn.send(new TextEncoder().encode(`AUTH ${token}\r\n`));
  assert.equal(render(await conn.readReply()), "+OK\\r\\n");
  await conn.send(["ECHO", "x".repeat(2000)]);
  assert.equal((await conn.readReply()).length, 2000 + 9);
});

Deno.test("CLIENT KILL: a client-token connection cannot kill one that holds the replication token", async () => {
  const client = "client-token-0123456789";
  const replication = "replication-token-0123456789";
  await using server = await startTestServer({ FSYNC: "no" }, {
    extensions: [authExtension({ client, replication })],
  });
  await using admin = await RawRespConnection.open(server.port);
  await using user = await RawRespConnection.open(server.port);
  await using victim = await RawRespConnection.open(server.port);
  assert.equal(await call(admin, "AUTH", replication), "OK");
  assert.equal(await call(user, "AUTH", client), "OK");
  assert.equal(await call(victim, "AUTH", client), "OK");
  const adminId = await call(admin, "CLIENT", "ID");
  const victimId = await call(victim, "CLIENT", "ID");
  for (const filter of [["ID", String(adminId)], ["TYPE", "normal"], ["USER", "default"]]) {
    const refused = await call(user, "CLIENT", "KILL", ...filter);
    assert.ok(typeof refused === "object" && refused !== null && "error" in refused);
    assert.match(refused.error, /^NOPERM CLIENT KILL would close .* replication token/);
  }
  assert.equal(await call(admin, "PING"), "PONG");
  assert.equal(await call(victim, "PING"), "PONG", "a refused KILL kills nobody");
  // A client may kill another client; the replication token may kill anyone.
  assert.equal(await call(user, "CLIENT", "KILL", "ID", String(victimId)), 1);
  assert.ok(await victim.closesWithin());
  const userId = await call(user, "CLIENT", "ID");
  assert.equal(await call(admin, "CLIENT", "KILL", "ID", String(userId)), 1);
  assert.ok(await user.closesWithin());
  // CLIENT KILL of itself (old form, or SKIPME no) answers, then closes.
  const self = (await call(admin, "CLIENT", "INFO")) as { verbatim: string } | string;
  const addr = /addr=(\S+)/.exec(typeof self === "string" ? self : self.verbatim)?.[1];
  assert.ok(addr !== undefined);
  assert.equal(await call(admin, "CLIENT", "KILL", addr), "OK");
  assert.ok(await admin.closesWithin());
});

Deno.test({
  name:
    "CLIENT KILL TYPE master on a replica: refused to a client-token holder; the stream goes on",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-client-kill-", async (dir) => {
      await Deno.writeTextFile(`${dir}/client`, "client-0123456789abcdef\n");
      await Deno.writeTextFile(`${dir}/replication`, "replication-0123456789abcdef\n");
      const tokens = [
        "--auth-token-file",
        `${dir}/client`,
        "--replication-token-file",
        `${dir}/replication`,
        "--fsync",
        "no",
        ...FAST_FAILURE_FLAGS,
      ];
      const replica = await KvNode.start("replica", `${dir}/replica`, ["--replica", ...tokens]);
      const master = await KvNode.start("master", `${dir}/master`, [
        "--replicas",
        `127.0.0.1:${replica.port}`,
        ...tokens,
      ]);
      const client = "client-0123456789abcdef";
      assert.equal(await master.send(["SET", "a", "1"], client), "OK");
      await waitUntil(
        "a replicated",
        async () => (await replica.send(["GET", "a"], client)) === "1",
      );
      await using conn = await RawRespConnection.open(replica.port);
      assert.equal(await call(conn, "AUTH", client), "OK");
      const links = await call(conn, "CLIENT", "LIST", "TYPE", "master");
      assert.equal(typeof links, "string");
      assert.match(links as string, /flags=M .*cmd=replicate/);
      const refused = await call(conn, "CLIENT", "KILL", "TYPE", "master");
      assert.ok(typeof refused === "object" && refused !== null && "error" in refused);
      assert.match(refused.error, /^NOPERM .*master's replication stream/);
      assert.equal(await master.send(["SET", "b", "2"], client), "OK");
      await waitUntil(
        "b replicated",
        async () => (await replica.send(["GET", "b"], client)) === "2",
      );
      assert.match(await call(conn, "CLIENT", "LIST", "TYPE", "master") as string, /flags=M/);
    }),
});

Deno.test("RESET: RESP2 again, no name, and authentication needed again", async () => {
  const token = "client-token-0123456789";
  await using server = await startTestServer({ FSYNC: "no" }, {
    extensions: [authExtension({ client: token, replication: token })],
  });
  await using conn = await RawRespConnection.open(server.port);
  const hello = await call(conn, "HELLO", "3", "AUTH", "default", token, "SETNAME", "n");
  assert.ok(hello instanceof Map);
  assert.equal(await call(conn, "RESET"), "RESET");
  await conn.send(["GET", "k"]);
  assert.equal(render(await conn.readReply()), "-NOAUTH Authentication required.\\r\\n");
  assert.equal(await call(conn, "AUTH", token), "OK");
  await conn.send(["CLIENT", "GETNAME"]);
  assert.equal(render(await conn.readReply()), "$-1\\r\\n");
});

Deno.test("INFO: several sections in Redis's order; all, everything and default give every one", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using conn = await RawRespConnection.open(server.port);
  const headers = (text: unknown) =>
    [...String(text).matchAll(/^# (\w+)/gm)].map((match) => match[1]);
  assert.deepEqual(headers(await call(conn, "INFO", "keyspace", "SERVER", "nope")), [
    "Server",
    "Keyspace",
  ]);
  const every = headers(await call(conn, "INFO"));
  assert.deepEqual(every.slice(0, 8), [
    "Server",
    "Clients",
    "Memory",
    "Persistence",
    "Stats",
    "Replication",
    "Cpu",
    "Keyspace",
  ]);
  for (const name of ["all", "everything", "default"]) {
    assert.deepEqual(headers(await call(conn, "INFO", name)), every);
  }
  await call(conn, "SET", "k", "v");
  const info = String(await call(conn, "INFO", "keyspace", "persistence", "stats"));
  assert.match(info, /^db0:keys=1,expires=0,avg_ttl=0\r$/m);
  assert.match(info, /^loading:0\r$/m);
  assert.match(info, /^total_commands_processed:\d+\r$/m);
  assert.match(info, /^total_net_input_bytes:[1-9]\d*\r$/m);
});
