/**
 * Connections that never authenticate: they get AUTH_TIMEOUT_SECONDS, they can send only small
 * requests, and however many of them are opened they never keep out a client that authenticates
 * or a master's replication link (the oldest unauthenticated one of the busiest address gives way).
 */
import assert from "node:assert/strict";
import { KVClient } from "../../mod.ts";
import { nodeOptions } from "../../src/cli/serve.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { replicatorOf } from "../../src/replication/extension.ts";
import { waitUntil } from "../helpers/cluster.ts";
import { startTestServer, type TestServer } from "../helpers/test_server.ts";
import { WireClient } from "../helpers/wire.ts";

const TOKEN = "shared-token-0123456789abcdef";
const decoder = new TextDecoder();

async function node(extra: Partial<Config> = {}): Promise<TestServer> {
  const overrides: Partial<Config> = {
    FSYNC: "no",
    AUTH_TOKEN: TOKEN,
    REPLICATION_TIMEOUT: 0.5,
    REPLICATION_HEALTH_CHECK_INTERVAL: 0.3,
    REPLICATION_RETRY_BACKOFF_MS: 20,
    ...extra,
  };
  const { config } = loadConfig({ overrides });
  return await startTestServer(overrides, await nodeOptions(config));
}

Deno.test("unauthenticated: idle connections filling MAX_CONNECTIONS keep out neither a master's link nor a client", async () => {
  await using replica = await node({
    REPLICA: true,
    MAX_CONNECTIONS: 20,
    MAX_UNAUTHENTICATED_CONNECTIONS: 15,
    AUTH_TIMEOUT_SECONDS: 60,
  });
  const idle: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 40; i++) {
      idle.push(await Deno.connect({ hostname: "127.0.0.1", port: replica.port }));
    }
    await waitUntil("the idle connections are counted", () => {
      return replica.node.stats.totalConnections >= 40;
    });
    await using master = await node({
      REPLICATION_ENABLED: true,
      REPLICA_ADDRESSES: [{ host: "127.0.0.1", port: replica.port }],
    });
    await using client = new KVClient({ port: master.port, token: TOKEN, timeoutMs: 5000 });
    await client.put("k", "v");
    await waitUntil("the replica has k", () => replica.node.store.read("k") !== undefined);
    assert.equal(replicatorOf(master.node)?.getStats().healthyReplicas, 1);
    // More idle connections after the link authenticated: it stays, and a client still gets in.
    for (let i = 0; i < 40; i++) {
      idle.push(await Deno.connect({ hostname: "127.0.0.1", port: replica.port }));
    }
    await using reader = new KVClient({ port: replica.port, token: TOKEN, timeoutMs: 5000 });
    assert.equal(await reader.read("k"), "v");
    await client.put("k2", "v2");
    await waitUntil("the replica has k2", () => replica.node.store.read("k2") !== undefined);
    assert.ok(replica.node.stats.connectedClients <= 20, `${replica.node.stats.connectedClients}`);
    assert.ok(replica.node.stats.evictedUnauthenticated >= 60);
    assert.equal(replica.node.stats.rejectedConnections, 0);
  } finally {
    for (const conn of idle) conn.close();
  }
});

Deno.test("unauthenticated: a connection that does not authenticate within AUTH_TIMEOUT_SECONDS is closed", async () => {
  await using server = await node({ AUTH_TIMEOUT_SECONDS: 0.2 });
  await using idle = await WireClient.connect(server.port);
  await using pinging = await WireClient.connect(server.port);
  await pinging.send("PING\n");
  assert.equal(await pinging.readLine(), "PONG");
  await using client = await WireClient.connect(server.port);
  await client.send(`AUTH ${TOKEN}\n`);
  assert.equal(await client.readLine(), "OK");
  assert.equal(decoder.decode(await idle.readToEnd()), "");
  assert.equal(decoder.decode(await pinging.readToEnd()), "");
  // The authenticated connection has no deadline.
  await new Promise((resolve) => setTimeout(resolve, 300));
  await client.send("PING\n");
  assert.equal(await client.readLine(), "PONG");
});

Deno.test("unauthenticated: requests before AUTH are bounded by MAX_UNAUTHENTICATED_REQUEST_BYTES", async () => {
  await using server = await node({ MAX_UNAUTHENTICATED_REQUEST_BYTES: 1024 });
  await using wire = await WireClient.connect(server.port);
  const big = "x".repeat(4096);
  await wire.send(`PUT k ${big}\nPING\nAUTH ${TOKEN}\nPUT k ${big}\nREAD k\n`);
  assert.deepEqual(await wire.readLines(4), [
    "ERROR: request is larger than MAX_UNAUTHENTICATED_REQUEST_BYTES (1024 bytes)",
    "PONG",
    "OK",
    "OK",
  ]);
  assert.equal(await wire.readLine(), big);
});
