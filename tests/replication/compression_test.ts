/**
 * Compressed replication: the codec is agreed after HELLO, catch-up frames and full-sync chunks
 * travel packed (fewer bytes on the wire, the same data at the end), either side can turn it off,
 * and a replica refuses a hostile frame (a zip bomb, a claim over its bound, bytes that are not
 * the codec's) with its numbers in the log, serving on afterwards.
 */
import assert from "node:assert/strict";
import * as zlib from "node:zlib";
import {
  acceptCodec,
  BatchPacker,
  CompressionError,
  packBatch,
  SKIP_AFTER_MISS_FRAMES,
  unpackBatch,
} from "../../src/replication/compression.ts";
import { replicationExtension } from "../../src/replication/mod.ts";
import {
  asText,
  callAt,
  CLUSTER_TEST,
  dumpAt,
  parseInfo,
  replicaFields,
  RespConn,
  waitUntil,
} from "../helpers/cluster.ts";
import { RawRespConnection } from "../helpers/resp3.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { FAST_REPLICATION, startTestServer, type TestServer } from "../helpers/test_server.ts";

const extensions = { extensions: [replicationExtension] };
const FAST = FAST_REPLICATION;
const decoder = new TextDecoder();

function call(server: TestServer, ...words: string[]): Promise<string> {
  return callAt(server.port, ...words);
}

function pairsOf(server: TestServer): Promise<string[]> {
  return dumpAt(server.port);
}

/** A raw connection to a replica, playing a master: `reply` sends words and reads one reply. */
async function streamTo(port: number) {
  const wire = await RawRespConnection.open(port);
  return {
    wire,
    async reply(words: (string | Uint8Array)[]): Promise<string> {
      await wire.send(words);
      return decoder.decode(await wire.readReply()).trimEnd();
    },
  };
}

/** `count` JSON documents in BATCHPUTs of 50 (each batch a ~10 KB record). */
async function writeJson(master: TestServer, prefix: string, count: number): Promise<void> {
  const conn = await RespConn.open(master.port);
  try {
    for (let i = 0; i < count; i += 50) {
      const words = ["BATCHPUT"];
      for (let j = i; j < i + 50 && j < count; j++) {
        words.push(
          `${prefix}${j}`,
          JSON.stringify({ id: j, status: "shipped", email: `user${j}@example.com`, n: j * 7 }),
        );
      }
      assert.equal(asText(await conn.send(words)), "OK");
    }
  } finally {
    conn.close();
  }
}

/** Waits until `replica` holds exactly `master`'s pairs; the master's INFO line of it. */
async function caughtUp(master: TestServer, replica: TestServer): Promise<Map<string, string>> {
  const expected = JSON.stringify(await pairsOf(master));
  await waitUntil(
    "the replica holds everything",
    async () => JSON.stringify(await pairsOf(replica)) === expected,
    20_000,
  );
  return replicaFields(parseInfo(await call(master, "INFO", "replication")), 0);
}

Deno.test("compression: a zstd batch unpacks to the same bytes; a bomb, an over-bound claim and garbage are refused", () => {
  const records = new TextEncoder().encode('{"status":"shipped"}'.repeat(2000));
  const packed = packBatch("zstd", records);
  assert.ok(packed !== undefined && packed.length < records.length / 10);
  assert.deepEqual(unpackBatch("zstd", packed, records.length, 1 << 20), records);
  assert.equal(packBatch("zstd", crypto.getRandomValues(new Uint8Array(4096))), undefined);

  const bomb = zlib.zstdCompressSync(new Uint8Array(64 << 20)); // 64 MiB of zeros in a few KB
  assert.ok(bomb.length < 10_000);
  assert.throws(() => unpackBatch("zstd", bomb, 1000, 1 << 20), CompressionError);
  assert.throws(() => unpackBatch("zstd", bomb, 64 << 20, 1 << 20), /over this node's bound/);
  assert.throws(() => unpackBatch("deflate", bomb, 1000, 1 << 20), /does not unpack/);
  assert.throws(() => unpackBatch("zstd", packed, records.length - 1, 1 << 20), /more than/);
  assert.throws(() => unpackBatch("zstd", packed, records.length + 1, 1 << 20), /not the/);
  assert.equal(acceptCodec("off", ["zstd"]), "none");
  assert.equal(acceptCodec("zstd", ["lz4", "deflate"]), "deflate");
  assert.equal(acceptCodec("zstd", ["lz4"]), "none");
});

Deno.test("compression: after a frame that does not pay, the next 15 go unpacked without trying, then it tries again", () => {
  const packer = new BatchPacker("zstd", 1024);
  const json = new TextEncoder().encode('{"status":"shipped"}'.repeat(500));
  assert.equal(packer.pack(json.subarray(0, 1000)), undefined, "under minBytes");
  assert.ok(packer.pack(json) !== undefined);
  assert.equal(packer.pack(crypto.getRandomValues(new Uint8Array(8192))), undefined);
  for (let i = 0; i < SKIP_AFTER_MISS_FRAMES; i++) {
    assert.equal(packer.pack(json), undefined, `frame ${i} after the miss`);
  }
  assert.ok(packer.pack(json) !== undefined, "tries again");
});

Deno.test({
  name: "compression: a full sync and catch-up travel packed; the replica ends with the same data",
  ...CLUSTER_TEST,
  fn: async () => {
    await using replica = await startTestServer({ ...FAST, REPLICA: true }, extensions);
    await using master = await startTestServer(FAST, extensions);
    await writeJson(master, "doc:", 3000);
    // A local write (the spec's manual REPLICATE PUT) makes the first master send a full sync.
    assert.equal(await call(replica, "REPLICATE", "PUT", "local", "1"), "OK");
    assert.equal(await call(master, "REPLICAS", "ADD", `127.0.0.1:${replica.port}`), "OK");
    await writeJson(master, "live:", 500);
    const line = await caughtUp(master, replica);
    assert.equal(line.get("compression"), "zstd");
    assert.equal(line.get("full_syncs"), "1");
    const raw = Number(line.get("sent_bytes"));
    const wire = Number(line.get("wire_bytes"));
    assert.ok(wire * 3 < raw, `packed ${raw} bytes to ${wire}: less than 3x`);
  },
});

Deno.test({
  name: "compression: off on either side keeps the stream uncompressed and correct",
  ...CLUSTER_TEST,
  fn: async () => {
    for (
      const [masterSetting, replicaSetting, shown] of [
        ["off", "zstd", "off"],
        ["zstd", "off", "refused_by_the_replica"],
      ] as const
    ) {
      await using replica = await startTestServer(
        { ...FAST, REPLICA: true, REPLICATION_COMPRESSION: replicaSetting },
        extensions,
      );
      await using master = await startTestServer({
        ...FAST,
        REPLICATION_COMPRESSION: masterSetting,
        REPLICATION_ENABLED: true,
        REPLICA_ADDRESSES: [{ host: "127.0.0.1", port: replica.port }],
      }, extensions);
      await writeJson(master, "doc:", 1000);
      const line = await caughtUp(master, replica);
      assert.equal(line.get("compression"), shown, masterSetting);
      assert.equal(line.get("sent_bytes"), line.get("wire_bytes"));
    }
  },
});

Deno.test("compression: a hostile master's zip bomb is refused and logged with its numbers; the replica serves on", async () => {
  await using replica = await startServerProcess({
    args: ["--replica", "--fsync", "no", "--max-request-bytes", String(8 << 20)],
  });
  const { wire, reply } = await streamTo(replica.port);
  await using _ = wire;
  assert.match(await reply(["REPLICATE", "HELLO", "0", "0", "1000", "5000"]), /^\+0 0 0$/);
  assert.equal(await reply(["REPLICATE", "COMPRESS", "lz4", "zstd"]), "+zstd");

  const bomb = zlib.zstdCompressSync(new Uint8Array(1 << 30)); // 1 GiB of zeros
  assert.ok(bomb.length < 100_000, `${bomb.length}`);
  assert.match(
    await reply(["REPLICATE", "LOGZ", "zstd", "4096", bomb]),
    /^-ERR a compressed frame of \d+ bytes unpacks to more than the 4096 it claims/,
  );
  const logged = await replica.waitForLog((l) => l.properties.event === "compressed_frame_refused");
  assert.equal(logged.properties.claimedBytes, 4096);
  assert.equal(logged.properties.packedBytes, bomb.length);
  assert.equal(logged.properties.maxBytes, 8 << 20);
  assert.match(
    await reply(["REPLICATE", "LOGZ", "zstd", String(1 << 30), bomb]),
    /^-ERR a compressed frame claims 1073741824 bytes unpacked, over this node's bound of 8388608/,
  );
  assert.match(
    await reply(["REPLICATE", "LOGZ", "zstd", "100", "not zstd at all"]),
    /^-ERR a 15-byte zstd frame does not unpack/,
  );
  assert.match(
    await reply(["REPLICATE", "LOGZ", "gzip", "100", "x"]),
    /^-ERR compressed frame in "gzip", which this replica did not accept/,
  );
  assert.equal(await reply(["PING"]), "+PONG");
  assert.equal(await reply(["REPLICATE", "PING"]), ":0");
});

Deno.test("compression: a replica with compression off answers none and refuses packed frames", async () => {
  await using replica = await startServerProcess({
    args: ["--replica", "--fsync", "no", "--replication-compression", "off"],
  });
  const { wire, reply } = await streamTo(replica.port);
  await using _ = wire;
  assert.match(await reply(["REPLICATE", "HELLO", "0", "0", "1000", "5000"]), /^\+0 0 0$/);
  assert.equal(await reply(["REPLICATE", "COMPRESS", "zstd"]), "+none");
  const packed = zlib.zstdCompressSync(new Uint8Array(100));
  assert.match(
    await reply(["REPLICATE", "LOGZ", "zstd", "100", packed]),
    /did not accept/,
  );
});
