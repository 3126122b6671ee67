/**
 * The replication (admin) token against a hostile client that holds a valid client token: it can
 * neither change the cluster (`REPLICAS`, `PROMOTE`), nor learn the replication token (a master
 * proves the token with CHALLENGE/PROVE and never sends it, not even to a replica address an
 * admin added), nor forge `REPLICATE` into a replica. Nodes run in-process.
 */
import assert from "node:assert/strict";
import { KVAuthError, KVClient } from "../../mod.ts";
import { nodeOptions } from "../../src/cli/serve.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { challengeProof, newNonce } from "../../src/protocol/challenge.ts";
import { RequestParser } from "../../src/protocol/request_parser.ts";
import { replicatorOf } from "../../src/replication/extension.ts";
import { kvstore } from "../helpers/cli.ts";
import { waitUntil } from "../helpers/cluster.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { hasOpenssl, withTestCertificates } from "../helpers/tls.ts";
import { startTestServer, type TestServer } from "../helpers/test_server.ts";
import { withTempDir } from "../helpers/temp_dir.ts";
import { WireClient } from "../helpers/wire.ts";

const CLIENT_TOKEN = "client-token-0123456789abcdef";
const REPLICATION_TOKEN = "replication-token-0123456789abcdef";
const decoder = new TextDecoder();
const encoder = new TextEncoder();

const FAST: Partial<Config> = {
  FSYNC: "no",
  REPLICATION_TIMEOUT: 0.5,
  REPLICATION_HEALTH_CHECK_INTERVAL: 0.3,
  REPLICATION_RETRY_BACKOFF_MS: 20,
};

/** A node with separate client and replication tokens. */
async function secureNode(extra: Partial<Config> = {}): Promise<TestServer> {
  const overrides: Partial<Config> = {
    ...FAST,
    AUTH_TOKEN: CLIENT_TOKEN,
    REPLICATION_TOKEN: REPLICATION_TOKEN,
    ...extra,
  };
  const { config } = loadConfig({ overrides });
  return await startTestServer(overrides, await nodeOptions(config));
}

/**
 * An impostor replica: answers every request plausibly (a nonce to CHALLENGE, a made-up proof to
 * PROVE, OK to AUTH, an empty log to HELLO) and keeps every byte it is sent.
 */
function impostor() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const received: Uint8Array[] = [];
  let connections = 0;
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      connections++;
      conns.add(conn);
      (async () => {
        const parser = new RequestParser({ maxRequestBytes: 1 << 20 });
        let pending = new Uint8Array(0);
        const chunk = new Uint8Array(65536);
        try {
          for (;;) {
            const n = await conn.read(chunk);
            if (n === null) break;
            received.push(chunk.slice(0, n));
            const data = new Uint8Array(pending.length + n);
            data.set(pending);
            data.set(chunk.subarray(0, n), pending.length);
            let offset = 0;
            for (;;) {
              const request = parser.next(data, offset);
              offset = parser.offset;
              if (request === undefined || request.kind !== "request") break;
              const name = decoder.decode(request.name).toUpperCase();
              const reply = name === "CHALLENGE" || name === "PROVE"
                ? `+${newNonce()}\r\n`
                : name === "REPLICATE"
                ? "+0 0 0\r\n"
                : "+OK\r\n";
              await conn.write(encoder.encode(reply));
            }
            pending = data.slice(offset);
          }
        } catch {
          // The master dropped the connection.
        } finally {
          conns.delete(conn);
          conn.close();
        }
      })();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get connections() {
      return connections;
    },
    text: () => received.map((bytes) => new TextDecoder("latin1").decode(bytes)).join(""),
    async close() {
      listener.close();
      for (const conn of conns) conn.close();
      await serving.catch(() => {});
    },
  };
}

Deno.test("admin: a client token cannot change the cluster; the replication token can", async () => {
  await using master = await secureNode();
  await using replica = await secureNode({ REPLICA: true });
  await using client = new KVClient({ port: master.port, token: CLIENT_TOKEN, timeoutMs: 5000 });
  for (const command of [["REPLICAS", "ADD", `127.0.0.1:${replica.port}`], ["REPLICAS"]]) {
    await assert.rejects(client.send(command), (error) => {
      assert.ok(error instanceof KVAuthError);
      assert.match(error.message, /REPLICAS changes the cluster and needs the replication token/);
      return true;
    });
  }
  assert.equal(replicatorOf(master.node), undefined);
  await using replicaClient = new KVClient({
    port: replica.port,
    token: CLIENT_TOKEN,
    timeoutMs: 5000,
  });
  await assert.rejects(replicaClient.send(["PROMOTE"]), /PROMOTE changes the cluster/);
  for (const command of [["REPLICAOF", "NO", "ONE"], ["SLAVEOF", "NO", "ONE"]]) {
    await assert.rejects(replicaClient.send(command), /OF changes the cluster/);
  }
  await assert.rejects(
    client.send(["REPLICAOF", "127.0.0.1", String(replica.port)]),
    /REPLICAOF changes the cluster/,
  );
  assert.equal(master.node.replica, false);
  assert.equal(replica.node.replica, true);
  // The CLI with only the client token says which token it needs.
  const refused = await kvstore([
    "promote",
    "--port",
    String(replica.port),
    "--auth-token",
    CLIENT_TOKEN,
  ]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /PROMOTE changes the cluster.*replication token/);

  // The admin proves the replication token (and the node proves it back): both commands work.
  await using admin = new KVClient({
    port: master.port,
    replicationToken: REPLICATION_TOKEN,
    timeoutMs: 5000,
  });
  assert.equal(await admin.send(["REPLICAS", "ADD", `127.0.0.1:${replica.port}`]), "OK");
  await admin.put("k", "v");
  await waitUntil("the replica has k", () => replica.node.store.read("k") !== undefined);
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, `${REPLICATION_TOKEN}\n`);
    const promoted = await kvstore([
      "promote",
      "--port",
      String(replica.port),
      "--replication-token-file",
      `${dir}/token`,
    ]);
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.match(promoted.stdout, /PROMOTED epoch 1/);
  });
  assert.equal(replica.node.replica, false);
});

Deno.test("admin: a master never sends the replication token; an endpoint that cannot prove it gets nothing", async () => {
  const fake = impostor();
  try {
    await using master = await secureNode({
      REPLICATION_ENABLED: true,
      REPLICA_ADDRESSES: [{ host: "127.0.0.1", port: fake.port }],
    });
    const replicator = replicatorOf(master.node);
    assert.ok(replicator !== undefined);
    await waitUntil(
      "two refused attempts",
      () => fake.connections >= 2 && replicator.getStats().replicas[0].consecutiveFailures >= 2,
    );
    assert.match(
      replicator.getStats().replicas[0].lastError,
      /did not prove it holds the replication token/,
    );
    const seen = fake.text();
    assert.match(seen, /CHALLENGE/);
    assert.match(seen, /PROVE/);
    assert.ok(!seen.includes(REPLICATION_TOKEN), "the token crossed the wire");
    assert.ok(!seen.includes(CLIENT_TOKEN), "the client token crossed the wire");
    assert.ok(!/HELLO|LOG|SNAPSHOT/.test(seen), `data went to the impostor: ${seen}`);
  } finally {
    await fake.close();
  }
});

Deno.test("admin: a client token cannot forge REPLICATE into a replica", async () => {
  await using replica = await secureNode({ REPLICA: true });
  await using wire = await WireClient.connect(replica.port);
  const dialerNonce = newNonce();
  await wire.send(`AUTH ${CLIENT_TOKEN}\nREPLICATE PUT k forged\nCHALLENGE ${dialerNonce}\n`);
  const [auth, forged, nodeNonce] = await wire.readLines(3);
  assert.equal(auth, "OK");
  assert.match(forged, /^ERROR: Authentication required: REPLICATE is accepted only after/);
  // A proof made with the client token is refused, and so is one replayed for another nonce.
  await wire.send(`PROVE ${challengeProof(CLIENT_TOKEN, "dialer", dialerNonce, nodeNonce)}\n`);
  assert.equal(await wire.readLine(), "ERROR: wrong proof of the replication token");
  await wire.send(`PROVE ${challengeProof(REPLICATION_TOKEN, "dialer", dialerNonce, nodeNonce)}\n`);
  assert.equal(
    await wire.readLine(),
    "ERROR: PROVE without CHALLENGE: send CHALLENGE <nonce> first",
  );
  await wire.send("REPLICATE HELLO 1 0 1000 5000\nREPLICATE PUT k forged\nREAD k\n");
  assert.deepEqual((await wire.readLines(3)).map((line) => line.slice(0, 30)), [
    "ERROR: Authentication required",
    "ERROR: Authentication required",
    "NOT_FOUND",
  ]);
  assert.equal(replica.node.store.read("k"), undefined);
});

Deno.test({
  name: "admin: the challenge-response runs over TLS too; master and replica replicate",
  ignore: !hasOpenssl(),
  fn: async () => {
    await withTestCertificates(async (certs) => {
      await using replica = await secureNode({
        REPLICA: true,
        TLS_CERT: certs.serverCertPath,
        TLS_KEY: certs.serverKeyPath,
      });
      await using master = await secureNode({
        REPLICATION_ENABLED: true,
        REPLICA_ADDRESSES: [{ host: "127.0.0.1", port: replica.port }],
        REPLICATION_TLS_CA: certs.caCertPath,
      });
      await using client = new KVClient({
        port: master.port,
        token: CLIENT_TOKEN,
        timeoutMs: 5000,
      });
      await client.put("k", "over tls");
      await waitUntil("the replica has k", () => replica.node.store.read("k") !== undefined);
      assert.equal(decoder.decode(replica.node.store.read("k")), "over tls");
    });
  },
});

Deno.test("auth: bad AUTHs from the master's own address never stop its sync-mode link", async () => {
  await using replica = await secureNode({ REPLICA: true, AUTH_FAILURE_DELAY_MS: 10 });
  const proxy = FaultProxy.start(replica.port);
  try {
    await using master = await secureNode({
      REPLICATION_ENABLED: true,
      REPLICATION_MODE: "sync",
      SYNC_REPLICAS: 1,
      REPLICATION_TIMEOUT: 2,
      REPLICA_ADDRESSES: [{ host: "127.0.0.1", port: proxy.port }],
    });
    await using client = new KVClient({ port: master.port, token: CLIENT_TOKEN, timeoutMs: 5000 });
    await client.put("before", "1");
    // A guesser on the master's address (127.0.0.1) runs far past AUTH_MAX_FAILURES (10)...
    for (let i = 0; i < 15; i++) {
      await using guesser = await WireClient.connect(replica.port);
      await guesser.send(`AUTH guess-${i}\n`);
      assert.match(await guesser.readLine(), /^ERROR: /);
    }
    // ...then the link drops and reconnects: its proof is accepted at once.
    proxy.setMode("reset");
    proxy.setMode("pass");
    await client.put("after", "2");
    assert.ok(proxy.stats.accepted >= 2, "the link reconnected");
    assert.equal(decoder.decode(replica.node.store.read("after")), "2");
    assert.equal(replicatorOf(master.node)?.getStats().healthyReplicas, 1);
  } finally {
    await proxy.close();
  }
});
