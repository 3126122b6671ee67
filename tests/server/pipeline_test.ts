import assert from "node:assert/strict";
import { concatRuns } from "../../src/replication/log_records.ts";
import type { Reply } from "../../src/protocol/mod.ts";
import { CommandError, type ConnectionInfo, type ServerExtension } from "../../src/server/mod.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { RespErrorReply } from "../../src/protocol/resp.ts";
import { REQUEST_PATH_LIMITS } from "../../src/config.ts";
import { prng } from "../helpers/random.ts";
import { resp, text, WireClient } from "../helpers/wire.ts";

Deno.test("pipelining: 5000 requests in one write, replies in order, reads see earlier writes", async () => {
  await using server = await startTestServer({ FSYNC: "always" });
  await using wire = await WireClient.connect(server.port);
  let requests = "";
  for (let i = 0; i < 2500; i++) requests += `PUT key${i} value${i}\nREAD key${i}\n`;
  await wire.send(requests);
  const lines = await wire.readLines(5000);
  for (let i = 0; i < 2500; i++) {
    assert.equal(lines[2 * i], "OK");
    assert.equal(lines[2 * i + 1], `value${i}`);
  }
  assert.equal(server.node.store.stats().keys, 2500);
});

Deno.test("pipelining: a RESP batch whose lookups are warmed ahead answers as run one by one", async () => {
  // The connection warms the lookups of the requests waiting in its buffer before it runs them
  // (KVStore.warmLookups). Writes inside the batch then move, delete and reuse the very slots
  // it warmed: every reply must still be the one of running the requests in order.
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  // Lookups are warmed only past REQUEST_PATH_LIMITS.warmedFromKeys keys.
  const filler = REQUEST_PATH_LIMITS.warmedFromKeys + 100;
  for (let first = 0; first < filler; first += 1000) {
    const pairs = Array.from({ length: 1000 }, (_, i) => [`fill:${first + i}`, "x"]).flat();
    await wire.send(resp("MSET", ...pairs));
    assert.equal(await wire.readReply(), "OK");
  }
  const requests: Uint8Array[] = [];
  const expected: (string | number | null)[] = [];
  const model = new Map<string, string>();
  const next = prng(5);
  const random = (n: number) => Math.floor(next() * n);
  for (let i = 0; i < 3000; i++) {
    const key = `k${random(60)}`;
    const choice = random(5);
    if (choice === 0) {
      const value = `v${i}`;
      requests.push(resp("SET", key, value, "EX", "3600"));
      expected.push("OK");
      model.set(key, value);
    } else if (choice === 1) {
      requests.push(resp("DEL", key));
      expected.push(model.delete(key) ? 1 : 0);
    } else if (choice === 2 && (model.get(key) ?? "0").match(/^\d+$/)) {
      const incremented = String(Number(model.get(key) ?? "0") + 1);
      requests.push(resp("INCR", key));
      expected.push(Number(incremented));
      model.set(key, incremented);
    } else {
      requests.push(resp("GET", key));
      expected.push(model.get(key) ?? null);
    }
  }
  // A value read once is cached, so later GETs of it compare keys with the cache's copy.
  await wire.send(concatRuns(requests));
  for (const [i, want] of expected.entries()) {
    const reply = await wire.readReply();
    assert.deepEqual(reply === null ? null : text(reply), want, `request ${i}`);
  }
});

Deno.test("pipelining: repeated command words, their case variants and unknown words each run as named", async () => {
  // A connection keeps the command a repeated word named (the parser hands back the same array):
  // a change of word, of case or to an unknown word must each be looked up again.
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  const words: [string[], string | number | null][] = [
    [["INCR", "n"], 1],
    [["INCR", "n"], 2],
    [["incr", "n"], 3],
    [["iNcR", "n"], 4],
    [["NOPE", "n"], "ERR unknown command 'NOPE', with args beginning with: 'n' "],
    [["NOPE", "n"], "ERR unknown command 'NOPE', with args beginning with: 'n' "],
    [["INCR", "n"], 5],
    [["GET", "n"], "5"],
    [["GET", "missing"], null],
    [["DECR", "n"], 4],
    [["DECR", "n"], 3],
    [["GET", "n"], "3"],
  ];
  await wire.send(concatRuns(words.map(([request]) => resp(...request))));
  for (const [i, [request, want]] of words.entries()) {
    const reply = await wire.readReply();
    const got = reply === null
      ? null
      : reply instanceof RespErrorReply
      ? `${reply.code} ${reply.message}`
      : typeof reply === "number"
      ? reply
      : text(reply);
    assert.deepEqual(got, want, `request ${i}: ${request.join(" ")}`);
  }
});

Deno.test("pipelining: a request split across many small writes still parses", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await using wire = await WireClient.connect(server.port);
  const bytes = resp("SET", "k", "v".repeat(100_000));
  for (let i = 0; i < bytes.length; i += 7919) await wire.send(bytes.subarray(i, i + 7919));
  assert.equal(await wire.readReply(), "OK");
  await wire.send(resp("GET", "k"));
  assert.equal(text(await wire.readReply()), "v".repeat(100_000));
});

Deno.test("pipelining: MAX_PIPELINE_REQUESTS bounds what is in flight, every request is answered", async () => {
  await using server = await startTestServer({ FSYNC: "always", MAX_PIPELINE_REQUESTS: 3 });
  await using wire = await WireClient.connect(server.port);
  let requests = "";
  for (let i = 0; i < 1000; i++) requests += `PUT k${i} ${i}\nREAD k${i}\n`;
  await wire.send(requests);
  const lines = await wire.readLines(2000);
  for (let i = 0; i < 1000; i++) assert.deepEqual(lines.slice(2 * i, 2 * i + 2), ["OK", `${i}`]);
});

/** An extension whose command replies late, in reverse order of arrival. */
function lateReplies(): ServerExtension {
  return () => {
    const waiting: ((reply: Reply) => void)[] = [];
    return {
      commands: {
        LATE: {
          minArgs: 1,
          maxArgs: 1,
          handler: (args) => {
            const value = args[0].slice();
            const promise = new Promise<Reply>((resolve) => waiting.push(resolve));
            if (waiting.length === 3) {
              for (const resolve of waiting.reverse()) resolve({ type: "value", value });
            }
            return promise;
          },
        },
      },
    };
  };
}

Deno.test("hooks: a command that answers later keeps its place in the reply order", async () => {
  await using server = await startTestServer({ FSYNC: "no" }, { extensions: [lateReplies()] });
  await using wire = await WireClient.connect(server.port);
  await wire.send("LATE a\nPING one\nLATE b\nPING two\nLATE c\nPING three\n");
  assert.deepEqual(await wire.readLines(6), ["c", "one", "c", "two", "c", "three"]);
});

Deno.test("hooks: sync replication holds write replies and can turn them into errors", async () => {
  const acknowledged: number[] = [];
  const replication: ServerExtension = () => ({
    awaitReplication: (lsn) =>
      new Promise((resolve) =>
        setTimeout(() => {
          acknowledged.push(lsn);
          resolve(lsn % 2 === 0 ? "replicas did not acknowledge in time" : undefined);
        }, 5)
      ),
    info: { replication: () => [["connected_replicas", 0]] },
  });
  await using server = await startTestServer({ FSYNC: "always" }, { extensions: [replication] });
  await using wire = await WireClient.connect(server.port);
  await wire.send("PUT a 1\nREAD a\nPUT b 2\nDELETE a\n");
  assert.deepEqual(await wire.readLines(4), [
    "OK",
    "1",
    "ERROR: replicas did not acknowledge in time",
    "OK",
  ]);
  assert.deepEqual(acknowledged, [1, 2, 3]);
  await wire.send(resp("INFO", "replication"));
  assert.equal(
    text(await wire.readReply()),
    "# Replication\r\nrole:master\r\nconnected_replicas:0\r\n",
  );
});

Deno.test("hooks: authorize gates commands per connection", async () => {
  const allowed = new WeakSet<ConnectionInfo>();
  const gate: ServerExtension = () => ({
    commands: {
      LETMEIN: {
        minArgs: 0,
        maxArgs: 0,
        handler: (_args, out, ctx) => {
          allowed.add(ctx.connection);
          out.ok();
        },
      },
    },
    authorize: (name, connection) =>
      name === "LETMEIN" || allowed.has(connection)
        ? undefined
        : { type: "error", code: "NOAUTH", message: "say LETMEIN first" },
  });
  await using server = await startTestServer({ FSYNC: "no" }, { extensions: [gate] });
  await using first = await WireClient.connect(server.port);
  await first.send("READ k\nletmein\nREAD k\n");
  assert.deepEqual(await first.readLines(3), ["ERROR: say LETMEIN first", "OK", "NOT_FOUND"]);
  await using second = await WireClient.connect(server.port);
  await second.send("READ k\n");
  assert.equal(await second.readLine(), "ERROR: say LETMEIN first");
});

Deno.test("hooks: authorize is asked for every request, also while one command word repeats", async () => {
  // The connection keeps the command a repeated word named; the gate's answer must not be kept.
  let open = false;
  const gate: ServerExtension = () => ({
    commands: {
      OPENGATE: {
        minArgs: 0,
        maxArgs: 0,
        handler: (_args, out) => {
          open = true;
          out.ok();
        },
      },
    },
    authorize: (name) =>
      name === "OPENGATE" || open ? undefined : { type: "error", code: "NOAUTH", message: "shut" },
  });
  await using server = await startTestServer({ FSYNC: "no" }, { extensions: [gate] });
  await using client = await WireClient.connect(server.port);
  await using opener = await WireClient.connect(server.port);
  const errorOf = (reply: unknown) => reply instanceof RespErrorReply ? reply.code : reply;
  await client.send(concatRuns([resp("INCR", "n"), resp("INCR", "n")]));
  assert.equal(errorOf(await client.readReply()), "NOAUTH");
  assert.equal(errorOf(await client.readReply()), "NOAUTH");
  await opener.send(resp("OPENGATE"));
  assert.equal(text(await opener.readReply() as Uint8Array), "OK");
  // The same word again, in a new read: the kept command, asked again.
  await client.send(concatRuns([resp("INCR", "n"), resp("INCR", "n")]));
  assert.equal(await client.readReply(), 1);
  assert.equal(await client.readReply(), 2);
});

Deno.test("hooks: an extension that fails to stop does not keep the store from closing", async () => {
  const failing: ServerExtension = () => ({
    close: () => Promise.reject(new Error("replica drain failed")),
  });
  await using server = await startTestServer({ FSYNC: "always" }, { extensions: [failing] });
  await using wire = await WireClient.connect(server.port);
  await wire.send("PUT k v\n");
  assert.equal(await wire.readLine(), "OK");
  await server.close();
  assert.equal(server.node.store.closed, true);
});

Deno.test("hooks: a CommandError is the client's error; anything else an internal one", async () => {
  const failing: ServerExtension = () => ({
    commands: {
      BAD: {
        minArgs: 0,
        maxArgs: 0,
        handler: () => {
          throw new CommandError("that request is wrong", "WRONG");
        },
      },
      LATEBAD: {
        minArgs: 0,
        maxArgs: 0,
        handler: () => Promise.reject(new CommandError("wrong, later")),
      },
      BROKEN: {
        minArgs: 0,
        maxArgs: 0,
        handler: (_args, out) => {
          out.ok();
          throw new Error("a bug");
        },
      },
    },
  });
  await using server = await startTestServer({ FSYNC: "no" }, { extensions: [failing] });
  await using wire = await WireClient.connect(server.port);
  await wire.send("BAD\nLATEBAD\nBROKEN\nPING\n");
  assert.deepEqual(await wire.readLines(4), [
    "ERROR: that request is wrong",
    "ERROR: wrong, later",
    "ERROR: Internal error: a bug",
    "PONG",
  ]);
  await wire.send(resp("BAD"));
  assert.deepEqual(await wire.readReply(), new RespErrorReply("WRONG", "that request is wrong"));
});

Deno.test("hooks: a command registered twice fails the start; REPLICATE is replaced on purpose", async () => {
  const ping: ServerExtension = () => ({
    commands: { PING: { minArgs: 0, maxArgs: 0, handler: (_args, out) => out.ok() } },
  });
  await assert.rejects(
    () => startTestServer({ FSYNC: "no" }, { extensions: [ping] }),
    /command PING is registered twice \(by built-in and by extension 1\)/,
  );
  const hello: ServerExtension = () => ({
    commands: { HELLOX: { minArgs: 0, maxArgs: 0, handler: (_args, out) => out.ok() } },
  });
  await assert.rejects(
    () => startTestServer({ FSYNC: "no" }, { extensions: [hello, hello] }),
    /command HELLOX is registered twice \(by extension 1 and by extension 2\)/,
  );
  const replicate: ServerExtension = () => ({
    replaces: {
      REPLICATE: {
        minArgs: 0,
        maxArgs: Infinity,
        replicaOnly: true,
        handler: (_args, out) => out.status("MINE"),
      },
    },
  });
  await assert.rejects(
    () => startTestServer({ FSYNC: "no" }, { extensions: [replicate, replicate] }),
    /extension 2 replaces REPLICATE, which .* was replaced already \(by extension 1\)/,
  );
  await using server = await startTestServer(
    { FSYNC: "no", REPLICA: true },
    { extensions: [replicate] },
  );
  await using wire = await WireClient.connect(server.port);
  await wire.send("REPLICATE X\n");
  assert.equal(await wire.readLine(), "MINE");
});
