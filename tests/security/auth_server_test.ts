import assert from "node:assert/strict";
import { KVAuthError, KVClient } from "../../mod.ts";
import { nodeOptions } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config.ts";
import { exposureWarning } from "../../src/security/auth_extension.ts";
import { kvstore } from "../helpers/cli.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { startTestServer, type TestServer } from "../helpers/test_server.ts";
import { withTempDir } from "../helpers/temp_dir.ts";
import { RespErrorReply, type RespValue } from "../../src/protocol/resp.ts";
import { resp, resp as resp_, text, WireClient } from "../helpers/wire.ts";

function errorText(reply: RespValue): string {
  assert.ok(reply instanceof RespErrorReply, `not an error reply: ${String(reply)}`);
  return `${reply.code} ${reply.message}`;
}

const TOKEN = "correct-horse-battery-staple";
const decoder = new TextDecoder();

async function authServer(extra: Record<string, unknown> = {}): Promise<TestServer> {
  const overrides = { FSYNC: "no" as const, AUTH_TOKEN: TOKEN, ...extra };
  const { config } = loadConfig({ overrides });
  return await startTestServer(overrides, await nodeOptions(config));
}

Deno.test("auth (text): only PING and AUTH before AUTH; a wrong token changes nothing", async () => {
  await using server = await authServer();
  await using wire = await WireClient.connect(server.port);
  await wire.send("PING\nPUT k v\nREAD k\nINFO\nAUTH wrong\nREAD k\n");
  assert.deepEqual(await wire.readLines(6), [
    "PONG",
    "ERROR: Authentication required: send AUTH <token> first",
    "ERROR: Authentication required: send AUTH <token> first",
    "ERROR: Authentication required: send AUTH <token> first",
    "ERROR: invalid token",
    "ERROR: Authentication required: send AUTH <token> first",
  ]);
  assert.equal(server.node.store.stats().keys, 0);
  await wire.send(`AUTH ${TOKEN}\nPUT k v\nREAD k\nAUTH wrong\nREAD k\n`);
  // A failed AUTH after a good one keeps the connection authenticated (as Redis does).
  assert.deepEqual(await wire.readLines(5), ["OK", "OK", "v", "ERROR: invalid token", "v"]);
  // Another connection starts unauthenticated.
  await using other = await WireClient.connect(server.port);
  await other.send("READ k\n");
  assert.equal(await other.readLine(), "ERROR: Authentication required: send AUTH <token> first");
});

Deno.test("auth (RESP): Redis's NOAUTH and WRONGPASS replies; Redis's AUTH default <token> works", async () => {
  await using server = await authServer();
  await using wire = await WireClient.connect(server.port);
  await wire.send(resp("GET", "k"));
  assert.equal(errorText(await wire.readReply()), "NOAUTH Authentication required.");
  await wire.send(resp("AUTH", "nope"));
  const wrongPass = "WRONGPASS invalid username-password pair or user is disabled.";
  assert.equal(errorText(await wire.readReply()), wrongPass);
  await wire.send(resp("AUTH", "someone", TOKEN));
  assert.equal(errorText(await wire.readReply()), wrongPass);
  await wire.send(resp("AUTH", "default", TOKEN, "extra"));
  assert.equal(errorText(await wire.readReply()), "ERR syntax error");
  await wire.send(resp("AUTH", "default", TOKEN));
  assert.equal(await wire.readReply(), "OK");
  await wire.send(resp("SET", "k", "v"));
  assert.equal(await wire.readReply(), "OK");
  await wire.send(resp("GET", "k"));
  assert.equal(text(await wire.readReply()), "v");
});

Deno.test("auth: CONFIG GET never shows the token", async () => {
  await using server = await authServer();
  await using client = new KVClient({ port: server.port, token: TOKEN, timeoutMs: 5000 });
  const reply = await client.send(["CONFIG", "GET", "auth-token*"]) as Uint8Array[];
  const shown = reply.map((item) => decoder.decode(item));
  assert.deepEqual(shown.slice(0, 2), ["auth-token", "(set, hidden)"]);
  assert.ok(!shown.some((item) => item.includes(TOKEN)));
});

Deno.test("auth: bad AUTHs never lock out the right token; failures past the limit are delayed", async () => {
  // A delay no test waits for: a reply that comes at all came at once.
  await using server = await authServer({ AUTH_FAILURE_DELAY_MS: 60_000 });
  await using guesser = await WireClient.connect(server.port);
  await guesser.send(Array.from({ length: 10 }, (_, i) => `AUTH guess-${i}\n`).join(""));
  assert.deepEqual(await guesser.readLines(10), Array(10).fill("ERROR: invalid token"));
  await guesser.send("AUTH guess-10\nAUTH guess-11\n");
  await using client = await WireClient.connect(server.port);
  await client.send(`AUTH ${TOKEN}\nPUT k v\nREAD k\n`);
  assert.deepEqual(await client.readLines(3), ["OK", "OK", "v"]);
  await using resp = await WireClient.connect(server.port);
  await resp.send(resp_("AUTH", "default", TOKEN));
  assert.equal(await resp.readReply(), "OK");
  // The 11th failure is still waiting for its delay: nothing more came on that connection.
  await assert.rejects(guesser.readLine(200), /no data from the server in time/);
});

Deno.test("auth: a failure past AUTH_MAX_FAILURES is answered late and closes its connection", async () => {
  await using server = await authServer({ AUTH_MAX_FAILURES: 1, AUTH_FAILURE_DELAY_MS: 50 });
  await using wire = await WireClient.connect(server.port);
  // Pipelined guesses after the delayed one are never run: one guess per connection and delay.
  await wire.send(`AUTH a\nAUTH b\nAUTH ${TOKEN}\nPING\n`);
  assert.equal(await wire.readLine(), "ERROR: invalid token");
  assert.equal(
    await wire.readLine(),
    "ERROR: invalid token; too many failures from 127.0.0.1 (AUTH_MAX_FAILURES is 1 per 60 s): " +
      "closing",
  );
  assert.equal(decoder.decode(await wire.readToEnd()), "");
  await using other = await WireClient.connect(server.port);
  await other.send(`AUTH ${TOKEN}\nPING\n`);
  assert.deepEqual(await other.readLines(2), ["OK", "PONG"]);
});

Deno.test("auth: the window ends and failures are answered at once again", async () => {
  await using server = await authServer({
    AUTH_MAX_FAILURES: 1,
    AUTH_FAILURE_WINDOW_SECONDS: 0.2,
    AUTH_FAILURE_DELAY_MS: 60_000,
  });
  await using wire = await WireClient.connect(server.port);
  await wire.send("AUTH a\n");
  assert.equal(await wire.readLine(), "ERROR: invalid token");
  await new Promise((resolve) => setTimeout(resolve, 250));
  await wire.send("AUTH b\n");
  assert.equal(await wire.readLine(), "ERROR: invalid token");
});

Deno.test("auth: failures are logged with the peer address, at the first and the first delayed", async () => {
  await using server = await startServerProcess({
    args: ["--fsync", "no", "--auth-max-failures", "3", "--auth-failure-delay-ms", "0"],
    env: { KVSTORE_AUTH_TOKEN: TOKEN },
  });
  for (let i = 0; i < 5; i++) {
    await using wire = await WireClient.connect(server.port);
    await wire.send(`AUTH ${i}\n`);
    await wire.readLine();
  }
  const logged = server.logs.filter((line) => line.properties.event === "auth_failed");
  assert.equal(logged.length, 2, JSON.stringify(logged));
  assert.match(String(logged[0].properties.peer), /^127\.0\.0\.1:\d+$/);
  assert.equal(logged[0].properties.penalized, false);
  assert.equal(logged[1].properties.failures, 4);
  assert.equal(logged[1].properties.penalized, true);
  assert.equal(logged[0].level, "WARN");
});

Deno.test("KVClient: the token is sent on every new connection; a wrong or missing one fails typed", async () => {
  await using server = await authServer();
  await using client = new KVClient({ port: server.port, token: TOKEN, timeoutMs: 5000 });
  await Promise.all([client.put("a", "1"), client.put("b", "2")]);
  assert.equal(await client.read("a"), "1");
  await using anonymous = new KVClient({ port: server.port, timeoutMs: 5000 });
  await assert.rejects(anonymous.read("a"), (error) => {
    assert.ok(error instanceof KVAuthError);
    assert.equal(error.code, "NOAUTH");
    return true;
  });
  await using wrong = new KVClient({ port: server.port, token: "guess", timeoutMs: 5000 });
  const calls = [wrong.read("a"), wrong.put("c", "3")];
  for (const call of calls) {
    await assert.rejects(call, (error) => {
      assert.ok(error instanceof KVAuthError);
      assert.match(error.message, /AUTH refused: invalid username-password pair/);
      return true;
    });
  }
  assert.equal(await client.read("c"), undefined);
});

Deno.test("cli: --auth-token, --auth-token-file and KVSTORE_AUTH_TOKEN", async () => {
  await using server = await authServer();
  const port = String(server.port);
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, `${TOKEN}\n`);
    assert.equal((await kvstore(["put", "k", "v", "--port", port, "--auth-token", TOKEN])).code, 0);
    const fromFile = await kvstore([
      "read",
      "k",
      "--port",
      port,
      "--auth-token-file",
      `${dir}/token`,
    ]);
    assert.deepEqual([fromFile.code, fromFile.stdout], [0, "v\n"]);
    const fromEnv = await kvstore(["read", "k", "--port", port], { KVSTORE_AUTH_TOKEN: TOKEN });
    assert.deepEqual([fromEnv.code, fromEnv.stdout], [0, "v\n"]);
    const without = await kvstore(["read", "k", "--port", port]);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /Authentication required.*--auth-token/);
  });
});

Deno.test("serve: AUTH_TOKEN_FILE (a systemd credential) is read at start; a missing one fails the start", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, `${TOKEN}\n`);
    {
      await using server = await startServerProcess({
        args: ["--fsync", "no", "--auth-token-file", `${dir}/token`],
      });
      await using client = new KVClient({ port: server.port, token: TOKEN, timeoutMs: 5000 });
      await client.put("k", "v");
      await using anonymous = new KVClient({ port: server.port, timeoutMs: 5000 });
      await assert.rejects(anonymous.read("k"), KVAuthError);
    }
    await assert.rejects(
      startServerProcess({ args: ["--auth-token-file", `${dir}/missing`] }),
      /cannot read token file/,
    );
  });
});

Deno.test("a node beyond loopback without a token says so loudly; on loopback it is quiet", () => {
  const open = exposureWarning({ host: "0.0.0.0", port: 5555, auth: false, tls: false });
  assert.match(open ?? "", /0\.0\.0\.0:5555.*WITHOUT AUTHENTICATION.*--auth-token-file/);
  const replica = exposureWarning({
    host: "10.0.0.2",
    port: 5556,
    auth: false,
    tls: true,
    replica: true,
  });
  assert.match(replica ?? "", /REPLICATE/);
  assert.match(
    exposureWarning({ host: "::", port: 5555, auth: true, tls: false }) ?? "",
    /without TLS: the AUTH token .* clear text/,
  );
  assert.equal(exposureWarning({ host: "::", port: 5555, auth: true, tls: true }), undefined);
  for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) {
    assert.equal(exposureWarning({ host, port: 5555, auth: false, tls: false }), undefined, host);
  }
});

Deno.test("serve on loopback without a token starts without the exposure warning", async () => {
  await using server = await startServerProcess({ args: ["--fsync", "no"] });
  assert.ok(!server.logs.some((line) => line.properties.event === "exposed"));
});

Deno.test("a token must be one word: a space or control character is refused at start", async () => {
  const { config } = loadConfig({ overrides: { AUTH_TOKEN: "two words" } });
  await assert.rejects(nodeOptions(config), /AUTH_TOKEN: the token holds a space .* index 3/);
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, "tab\there\n");
    const fromFile = loadConfig({ overrides: { AUTH_TOKEN_FILE: `${dir}/token` } }).config;
    await assert.rejects(nodeOptions(fromFile), /from .*token\): the token holds .*code 9/);
  });
});
