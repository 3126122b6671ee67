/**
 * The replication stream's own protection, with real processes: the replication token (a
 * replica refuses REPLICATE from a connection without it) and replication over TLS.
 */
import assert from "node:assert/strict";
import {
  asText,
  CLUSTER_TEST,
  dump,
  FAST_FAILURE_FLAGS,
  KvNode,
  replicaFields,
  replicasCaughtUp,
  textRequest,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { hasOpenssl, withTestCertificates } from "../helpers/tls.ts";

const FAST = ["--fsync", "no", ...FAST_FAILURE_FLAGS];

/** Waits until the master's first replica has failed `failures` times; returns its last error. */
async function replicaError(master: KvNode, failures = 2): Promise<string> {
  let error = "";
  await waitUntil(`${failures} failed attempts`, async () => {
    const info = await master.info();
    const fields = replicaFields(info, 0);
    error = info.get("replica0_last_error") ?? "";
    return Number(fields.get("consecutive_failures") ?? 0) >= failures;
  });
  return error;
}

Deno.test({
  name: "replication token: REPLICATE needs it; a master with it replicates, one without cannot",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-security-", async (dir) => {
      await Deno.writeTextFile(`${dir}/token`, "repl-0123456789\n");
      // Every node here connects from 127.0.0.1: the impostors' failed AUTHs must not get
      // that address blocked for the real master (AUTH_MAX_FAILURES counts per address).
      const replica = await KvNode.start("replica", `${dir}/replica`, [
        "--replica",
        "--replication-token-file",
        `${dir}/token`,
        "--auth-max-failures",
        "1000000",
        ...FAST,
      ]);
      // The spec's troubleshooting step no longer lets anybody write to a replica...
      assert.deepEqual(await textRequest(replica.port, ["REPLICATE PUT k v", "READ k"]), [
        "ERROR: Authentication required: REPLICATE is accepted only after AUTH with the " +
        "replication token",
        "NOT_FOUND",
      ]);
      // ...unless the connection presented the token (clients need no token here).
      assert.deepEqual(
        await textRequest(replica.port, ["AUTH repl-0123456789", "REPLICATE PUT k v", "READ k"]),
        ["OK", "OK", "v"],
      );

      const impostor = await KvNode.start("impostor", `${dir}/impostor`, [
        "--replicas",
        `127.0.0.1:${replica.port}`,
        "--replication-token",
        "guess",
        ...FAST,
      ]);
      assert.equal(await impostor.send(["PUT", "evil", "1"]), "OK");
      assert.match(
        await replicaError(impostor),
        /replica refused the replication token: WRONGPASS wrong proof of the replication token/,
      );
      const tokenless = await KvNode.start("tokenless", `${dir}/tokenless`, [
        "--replicas",
        `127.0.0.1:${replica.port}`,
        ...FAST,
      ]);
      assert.match(
        await replicaError(tokenless),
        /NOAUTH Authentication required: REPLICATE is accepted only after AUTH/,
      );
      assert.equal(await replica.send(["READ", "evil"]), "(nil)");
      await impostor.kill();
      await tokenless.kill();

      const master = await KvNode.start("master", `${dir}/master`, [
        "--replicas",
        `127.0.0.1:${replica.port}`,
        "--replication-token-file",
        `${dir}/token`,
        ...FAST,
      ]);
      assert.equal(await master.send(["PUT", "good", "1"]), "OK");
      await waitUntil("replica streaming", () => replicasCaughtUp(master));
      assert.equal(await replica.send(["READ", "good"]), "1");
    }),
});

Deno.test({
  name: "replication token defaults to AUTH_TOKEN: one shared token secures clients and the stream",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-security-", async (dir) => {
      const token = ["--auth-token", "shared-0123456789"];
      const replica = await KvNode.start("replica", `${dir}/replica`, [
        "--replica",
        ...token,
        ...FAST,
      ]);
      const master = await KvNode.start("master", `${dir}/master`, [
        "--replicas",
        `127.0.0.1:${replica.port}`,
        ...token,
        ...FAST,
      ]);
      assert.match(await master.send(["PUT", "k", "v"]), /Authentication required/);
      const conn = await master.connect();
      assert.equal(asText(await conn.send(["AUTH", "shared-0123456789"])), "OK");
      assert.equal(asText(await conn.send(["PUT", "k", "v"])), "OK");
      conn.close();
      await waitUntil("replica streaming", async () => {
        const c = await master.connect();
        try {
          await c.send(["AUTH", "shared-0123456789"]);
          const info = asText(await c.send(["INFO", "replication"]));
          return /state=streaming/.test(info) && /lag_records=0/.test(info);
        } finally {
          c.close();
        }
      });
      assert.deepEqual(await textRequest(replica.port, ["AUTH shared-0123456789", "READ k"]), [
        "OK",
        "v",
      ]);
    }),
});

Deno.test({
  name: "replication over TLS: --replication-tls-ca trusts the replicas' certificates",
  ignore: !hasOpenssl(),
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-repl-security-", async (dir) => {
      await withTestCertificates(async (certs) => {
        const replica = await KvNode.start("replica", `${dir}/replica`, [
          "--replica",
          "--tls-cert",
          certs.serverCertPath,
          "--tls-key",
          certs.serverKeyPath,
          ...FAST,
        ]);
        const plain = await KvNode.start("plain", `${dir}/plain`, [
          "--replicas",
          `127.0.0.1:${replica.port}`,
          ...FAST,
        ]);
        await replicaError(plain);
        await plain.kill();
        const master = await KvNode.start("master", `${dir}/master`, [
          "--replicas",
          `127.0.0.1:${replica.port}`,
          "--replication-tls-ca",
          certs.caCertPath,
          // A token the replica does not use: replication goes on, with a warning.
          "--replication-token",
          "unused-0123456789",
          ...FAST,
        ]);
        for (let i = 0; i < 50; i++) {
          assert.equal(await master.send(["PUT", `k${i}`, `v${i}`]), "OK");
        }
        await waitUntil("replica streaming over TLS", () => replicasCaughtUp(master));
        const expected = await dump(master);
        assert.equal(expected.length, 50);
        assert.equal(
          master.logsMatching(/has no token: it accepts REPLICATE from anyone/).length,
          1,
        );
        // The replica only speaks TLS: read it back through a TLS connection.
        const conn = await Deno.connectTls({
          hostname: "127.0.0.1",
          port: replica.port,
          caCerts: [certs.caCertPem],
        });
        try {
          await conn.write(new TextEncoder().encode("READ k49\n"));
          const buffer = new Uint8Array(64);
          const n = await conn.read(buffer);
          assert.equal(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), "v49\n");
        } finally {
          conn.close();
        }
      });
    }),
});
