/**
 * `COMMAND INFO` of every command kvstore has that Redis 7.0.15 has too, against a real
 * redis-server: name, arity, flags, first key, last key, key step and ACL categories (the first
 * seven fields, what clients and proxies read to find a command's keys), byte for byte, in RESP2
 * and RESP3. Redis writes flags and categories in a fixed order (its tables'), so nothing is
 * sorted. Key specs, tips and subcommands (the last three fields) are not compared: kvstore
 * leaves them empty.
 */
import assert from "node:assert/strict";
import { CLUSTER_TEST } from "../helpers/cluster.ts";
import { startRedis } from "../helpers/redis.ts";
import { decodeReply, RawRespConnection, render, replyEnd } from "../helpers/resp3.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { REDIS_SERVER_INSTALLED } from "./conformance.ts";

/**
 * Commands whose entry deliberately differs, by lower-case name: the field that differs
 * (0-based), kvstore's value there (rendered), and why.
 */
const DIFFERENCES: ReadonlyMap<string, { field: number; kvstore: string; why: string }> = new Map(
  ["replicaof", "slaveof"].map((name) => [name, {
    field: 1,
    kvstore: ":-3\\r\\n",
    why: "kvstore's REPLICAOF host port takes an optional EPOCH n (arity -3; Redis's is 3)",
  }]),
);

/** The first seven fields of the one `COMMAND INFO` entry in `reply`, each rendered. */
function firstSevenFields(reply: Uint8Array): string[] {
  // `*1` (the list of entries), then the entry's own header.
  const outer = reply.indexOf(0x0a) + 1;
  const inner = reply.indexOf(0x0a, outer) + 1;
  assert.equal(reply[outer], 0x2a, `not an entry: ${render(reply)}`);
  const fields: string[] = [];
  let at = inner;
  for (let i = 0; i < 7; i++) {
    const end = replyEnd(reply, at);
    fields.push(render(reply.subarray(at, end)));
    at = end;
  }
  return fields;
}

/** kvstore's `COMMAND LIST`, lower case. */
async function commandList(conn: RawRespConnection): Promise<string[]> {
  await conn.send(["COMMAND", "LIST"]);
  const names = decodeReply(await conn.readReply());
  assert.ok(Array.isArray(names));
  return names.map(String);
}

Deno.test({
  name: "COMMAND INFO gives Redis 7.0.15's arity, flags, key positions and ACL categories",
  ignore: !REDIS_SERVER_INSTALLED,
  ...CLUSTER_TEST,
  fn: async () => {
    const redis = await startRedis(["--databases", "1"]);
    try {
      await using kvstore = await startServerProcess({ args: ["--fsync", "no"] });
      await using lister = await RawRespConnection.open(kvstore.port);
      const names = await commandList(lister);
      let compared = 0;
      for (const protocol of ["2", "3"]) {
        await using toRedis = await RawRespConnection.open(redis.port);
        await using toKvstore = await RawRespConnection.open(kvstore.port);
        for (const conn of [toRedis, toKvstore]) {
          await conn.send(["HELLO", protocol]);
          await conn.readReply();
        }
        for (const name of names) {
          await toRedis.send(["COMMAND", "INFO", name]);
          const redisReply = await toRedis.readReply();
          // A null entry: Redis has no such command (PUT, READRANGE, ... are kvstore's own).
          const [redisEntry] = decodeReply(redisReply) as unknown[];
          if (redisEntry === null) continue;
          await toKvstore.send(["COMMAND", "INFO", name]);
          const expected = firstSevenFields(redisReply);
          const actual = firstSevenFields(await toKvstore.readReply());
          const difference = DIFFERENCES.get(name);
          if (difference !== undefined) {
            assert.equal(actual[difference.field], difference.kvstore, difference.why);
            assert.notEqual(expected[difference.field], difference.kvstore, "listed, but equal");
            expected[difference.field] = difference.kvstore;
          }
          assert.deepEqual(actual, expected, `COMMAND INFO ${name} in RESP${protocol}`);
          compared++;
        }
      }
      // Every Redis command kvstore has (GET, SET, CLIENT, COMMAND, ...), in both protocols.
      assert.ok(compared > 2 * 60, `only ${compared} entries compared`);
    } finally {
      await redis.stop();
    }
  },
});

Deno.test({
  name: "COMMAND COUNT is the number of commands COMMAND LIST names",
  ...CLUSTER_TEST,
  fn: async () => {
    await using kvstore = await startServerProcess({ args: ["--fsync", "no"] });
    await using conn = await RawRespConnection.open(kvstore.port);
    const names = await commandList(conn);
    await conn.send(["COMMAND", "COUNT"]);
    assert.equal(decodeReply(await conn.readReply()), names.length);
    assert.equal(new Set(names).size, names.length);
  },
});
