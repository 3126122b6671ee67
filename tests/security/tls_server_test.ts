import assert from "node:assert/strict";
import { KVClient, KVConnectionError } from "../../mod.ts";
import { nodeOptions } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config.ts";
import { kvstore } from "../helpers/cli.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { hasOpenssl, withTestCertificates } from "../helpers/tls.ts";

const canMakeCertificates = hasOpenssl();
if (!canMakeCertificates) console.log("skipped: openssl is not installed, TLS tests cannot run");

Deno.test({
  name: "TLS: a client trusting the CA works; one without the CA, or without TLS, is refused",
  ignore: !canMakeCertificates,
  async fn() {
    await withTestCertificates(async (certs) => {
      const overrides = {
        FSYNC: "no" as const,
        TLS_CERT: certs.serverCertPath,
        TLS_KEY: certs.serverKeyPath,
      };
      const { config } = loadConfig({ overrides });
      await using server = await startTestServer(overrides, await nodeOptions(config));
      await using trusted = new KVClient({
        port: server.port,
        timeoutMs: 5000,
        tls: { caCerts: [certs.caCertPem] },
      });
      await trusted.put("k", "over tls");
      assert.equal(await trusted.read("k"), "over tls");

      await using untrusted = new KVClient({ port: server.port, timeoutMs: 5000, tls: {} });
      await assert.rejects(untrusted.read("k"), (error) => {
        assert.ok(error instanceof KVConnectionError);
        assert.match(error.message, /TLS handshake failed: .*(UnknownIssuer|certificate)/);
        return true;
      });
      // A plaintext client gets no answer it can read: the server only speaks TLS.
      await using plain = new KVClient({ port: server.port, timeoutMs: 2000 });
      await assert.rejects(plain.read("k"));
      assert.equal(await trusted.read("k"), "over tls");
    });
  },
});

Deno.test({
  name:
    "TLS: serve --tls-cert/--tls-key with the CLI's --tls-ca; a missing key file fails the start",
  ignore: !canMakeCertificates,
  async fn() {
    await withTestCertificates(async (certs) => {
      await using server = await startServerProcess({
        args: ["--fsync", "no", "--tls-cert", certs.serverCertPath],
        env: { KVSTORE_TLS_KEY: certs.serverKeyPath },
      });
      const run = async (args: string[]) => {
        const { code, stdout, stderr } = await kvstore([...args, "--port", String(server.port)]);
        return { code, out: stdout + stderr };
      };
      assert.deepEqual(await run(["put", "k", "v", "--tls-ca", certs.caCertPath]), {
        code: 0,
        out: "OK\n",
      });
      assert.deepEqual(await run(["read", "k", "--tls-ca", certs.caCertPath]), {
        code: 0,
        out: "v\n",
      });
      // Clients that close without TLS close_notify are ordinary disconnects, not warnings.
      assert.ok(
        !server.logs.some((line) => /UnexpectedEof/.test(line.message)),
        JSON.stringify(server.logs.map((line) => line.message)),
      );
      const refused = await run(["read", "k", "--tls"]);
      assert.equal(refused.code, 1);
      assert.match(refused.out, /TLS handshake failed/);
      await assert.rejects(
        startServerProcess({
          args: ["--tls-cert", certs.serverCertPath, "--tls-key", `${certs.dir}/nothing.key`],
        }),
        /TLS_KEY: cannot read .*nothing\.key/,
      );
      await assert.rejects(
        startServerProcess({ args: ["--tls-cert", certs.serverCertPath] }),
        /TLS needs both TLS_CERT and TLS_KEY; only TLS_CERT is set/,
      );
    });
  },
});
