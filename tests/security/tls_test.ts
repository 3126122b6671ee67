import assert from "node:assert/strict";
import { hasOpenssl, withTestCertificates } from "../helpers/tls.ts";

const canMakeCertificates = hasOpenssl();
if (!canMakeCertificates) console.log("skipped: openssl is not installed, TLS tests cannot run");

Deno.test({
  name: "test certificates: a client with the CA connects, one without it is refused",
  ignore: !canMakeCertificates,
  async fn() {
    await withTestCertificates(async (certs) => {
      const listener = Deno.listenTls({
        hostname: "127.0.0.1",
        port: 0,
        cert: certs.serverCertPem,
        key: certs.serverKeyPem,
      });
      const serving = (async () => {
        for await (const conn of listener) {
          const buffer = new Uint8Array(16);
          try {
            const n = await conn.read(buffer);
            if (n !== null) await conn.write(buffer.subarray(0, n));
          } catch {
            // the refused client aborts its handshake; nothing to answer
          } finally {
            conn.close();
          }
        }
      })();
      try {
        const port = (listener.addr as Deno.NetAddr).port;
        const trusted = await Deno.connectTls({
          hostname: "127.0.0.1",
          port,
          caCerts: [certs.caCertPem],
        });
        await trusted.write(new TextEncoder().encode("ping"));
        const reply = new Uint8Array(4);
        assert.equal(await trusted.read(reply), 4);
        assert.equal(new TextDecoder().decode(reply), "ping");
        trusted.close();
        await assert.rejects(async () => {
          const untrusted = await Deno.connectTls({ hostname: "127.0.0.1", port });
          try {
            await untrusted.write(new TextEncoder().encode("ping"));
            await untrusted.read(reply);
          } finally {
            untrusted.close();
          }
        }, /UnknownIssuer|certificate/);
      } finally {
        listener.close();
        await serving;
      }
    });
  },
});
