/**
 * What the command line says when something is in the way, in the user's words: a data directory
 * a node holds, a port in use (and no data directory left behind), a server that does not answer,
 * a TLS mismatch in either direction, and `replicas add` of something that is not a replica.
 */
import assert from "node:assert/strict";
import { kvstore } from "../helpers/cli.ts";
import { freePort } from "../helpers/cluster.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { withTempDir } from "../helpers/temp_dir.ts";
import { hasOpenssl, withTestCertificates } from "../helpers/tls.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("cli errors: repair and serve on a directory a node holds name that node", async () => {
  await withTempDir(async (dataDir) => {
    const node = await startServerProcess({ args: ["--fsync", "no"], dataDir });
    try {
      const repair = await kvstore(["repair", "--data-dir", dataDir]);
      assert.equal(repair.code, 1);
      assert.equal(repair.stdout, "");
      assert.match(
        repair.stderr,
        new RegExp(
          `^kvstore repair: ${dataDir} is in use by a running node \\(pid ${node.pid}, ` +
            `serving 127\\.0\\.0\\.1:${node.port}, since .*\\); stop it first`,
        ),
      );
      assert.doesNotMatch(repair.stderr, /Uncaught|at .*\.ts:\d+/); // no stack trace
      const second = await kvstore(["serve", "--port", "0", "--data-dir", dataDir]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, new RegExp(`is in use by a running node \\(pid ${node.pid}`));
      assert.equal((await node.stop()).code, 0);
      // A graceful stop removes RUNNING.json; one a crash leaves is believed only with the lock.
      assert.equal(await exists(`${dataDir}/RUNNING.json`), false);
    } finally {
      await node.kill();
    }
    const node2 = await startServerProcess({ args: ["--fsync", "no"], dataDir });
    // Written right after the "listening" line: wait for it (bounded), then crash.
    for (let i = 0; i < 200 && !await exists(`${dataDir}/RUNNING.json`); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await node2.kill("SIGKILL");
    assert.equal(await exists(`${dataDir}/RUNNING.json`), true);
    const afterCrash = await kvstore(["repair", "--data-dir", dataDir]);
    assert.equal(afterCrash.code, 0, afterCrash.stderr);
    assert.match(afterCrash.stdout, /no damage found/);
  }, "kvstore-locked-");
});

Deno.test("cli errors: a port in use is named, and no data directory is created", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  await withTempDir(async (dir) => {
    const taken = await kvstore(["serve", "--port", String(port), "--data-dir", `${dir}/data`]);
    assert.equal(taken.code, 1);
    assert.match(
      taken.stderr,
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`),
    );
    assert.equal(await exists(`${dir}/data`), false);
    const metrics = await kvstore([
      "serve",
      "--port",
      "0",
      "--metrics-port",
      String(port),
      "--data-dir",
      `${dir}/data`,
    ]);
    assert.equal(metrics.code, 1);
    assert.match(metrics.stderr, new RegExp(`cannot serve metrics on 127\\.0\\.0\\.1:${port}: `));
    assert.equal(await exists(`${dir}/data`), false);
  });
});

Deno.test("cli errors: a server that does not answer is a timeout in --timeout-ms words", async () => {
  // Accepts and never answers, like a stopped (SIGSTOP) server whose kernel still accepts.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    const result = await kvstore(["read", "k", "--port", String(port), "--timeout-ms", "300"]);
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `kvstore: kvstore at 127.0.0.1:${port}: no reply to READ within 300 ms (--timeout-ms); ` +
        "the server may be overloaded, stopped (SIGSTOP) or not a kvstore\n",
    );
  } finally {
    listener.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});

Deno.test({
  name: "cli errors: a TLS mismatch says TLS, in either direction; an untrusted CA names --tls-ca",
  ignore: !hasOpenssl(),
  async fn() {
    await withTestCertificates(async (certs) => {
      await using tlsNode = await startServerProcess({
        args: [
          "--fsync",
          "no",
          "--tls-cert",
          certs.serverCertPath,
          "--tls-key",
          certs.serverKeyPath,
        ],
      });
      const plain = await kvstore(["ping", "--port", String(tlsNode.port)]);
      assert.equal(plain.code, 1);
      assert.match(
        plain.stderr,
        /closed the connection because it requires TLS; connect with --tls-ca/,
      );
      const untrusted = await kvstore(["ping", "--tls", "--port", String(tlsNode.port)]);
      assert.equal(untrusted.code, 1);
      assert.match(untrusted.stderr, /TLS handshake failed: .*\(does the system's root store hold/);
      assert.doesNotMatch(untrusted.stderr, /caCerts/);
      const trusted = await kvstore([
        "ping",
        "--tls-ca",
        certs.caCertPath,
        "--port",
        `${tlsNode.port}`,
      ]);
      assert.equal(trusted.code, 0, trusted.stderr);

      await using plainNode = await startServerProcess({ args: ["--fsync", "no"] });
      const tlsToPlain = await kvstore([
        "ping",
        "--tls-ca",
        certs.caCertPath,
        "--port",
        String(plainNode.port),
      ]);
      assert.equal(tlsToPlain.code, 1);
      assert.match(
        tlsToPlain.stderr,
        /the server does not speak TLS \(it answered the TLS handshake in plain text\); connect without --tls-ca/,
      );
    });
  },
});

Deno.test({
  name: "cli errors: replicas add refuses a master, the master itself and an unreachable target",
  // Real processes: their pipes outlive a test's own ops by design.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fast = ["--fsync", "no", "--replication-health-check-interval", "0.3"];
    await using replica = await startServerProcess({ args: ["--replica", ...fast] });
    await using other = await startServerProcess({ args: fast });
    await using master = await startServerProcess({ args: fast });
    const port = String(master.port);
    const list = async () => (await kvstore(["replicas", "--port", port])).stdout;

    const self = await kvstore(["replicas", "add", `localhost:${master.port}`, "--port", port]);
    assert.equal(self.code, 1);
    assert.match(
      self.stderr,
      new RegExp(`localhost:${master.port} is this master itself \\(run_id`),
    );
    const otherMaster = await kvstore([
      "replicas",
      "add",
      `127.0.0.1:${other.port}`,
      "--port",
      port,
    ]);
    assert.equal(otherMaster.code, 1);
    assert.match(otherMaster.stderr, /is a master, not a replica; start it with --replica first/);
    const nobody = `127.0.0.1:${freePort()}`;
    const unreachable = await kvstore(["replicas", "add", nobody, "--port", port]);
    assert.equal(unreachable.code, 1);
    assert.match(
      unreachable.stderr,
      /cannot check that .* is a replica: .*cannot connect.*--force/,
    );
    assert.equal(await list(), "");

    const added = await kvstore(["replicas", "add", `127.0.0.1:${replica.port}`, "--port", port]);
    assert.deepEqual([added.code, added.stdout], [0, "OK\n"], added.stderr);
    const forced = await kvstore(["replicas", "add", nobody, "--force", "--port", port]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(await list(), `127.0.0.1:${replica.port}\n${nobody}\n`);
  },
});
