/**
 * The replica-side applier against real stores: the master's records (as its store hands them
 * out at the durability point) applied on a replica's store, the handshake, stale streams, and
 * the spec's manual REPLICATE commands as local writes.
 */
import assert from "node:assert/strict";
import { KVStore } from "../../src/storage/mod.ts";
import { ReplicaApplier, ReplicateError, upper } from "../../src/replication/replica_applier.ts";
import { PairChunkWriter } from "../../src/replication/stream_protocol.ts";
import { waitUntil } from "../helpers/cluster.ts";
import { withTempDir } from "../helpers/temp_dir.ts";
import { replicaStoreOf } from "../../src/replication/store_adapters.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b);
const words = (...parts: (string | Uint8Array)[]) =>
  parts.map((p) => typeof p === "string" ? enc(p) : p);

/** A master's store, a replica's store, and the records the master handed out when durable. */
interface Stores {
  master: KVStore;
  replica: KVStore;
  shipped: Uint8Array[];
}

/** Runs `body` with two fresh stores in a temporary directory, both closed before it goes. */
function withStores(body: (s: Stores) => Promise<void>): Promise<void> {
  return withTempDir(async (dir) => {
    const master = await KVStore.open(`${dir}/m`, { fsync: "no" });
    try {
      const replica = await KVStore.open(`${dir}/r`, { fsync: "no", replica: true });
      try {
        const shipped: Uint8Array[] = [];
        master.replicationLog.onDurable((records) => shipped.push(records));
        await body({ master, replica, shipped });
      } finally {
        await replica.close();
      }
    } finally {
      await master.close();
    }
  }, "kvstore-applier-");
}

Deno.test("applier: HELLO reports the position, LOG applies the master's records", async () => {
  await withStores(async (s) => {
    const applier = new ReplicaApplier(replicaStoreOf(s.replica));
    assert.deepEqual(await applier.handle(words("HELLO", "0", "0", "1000", "500"), 1, "m:1"), {
      type: "status",
      text: "0 0 0",
    });
    await s.master.put("a", "1");
    await s.master.batchPut([["b", "2"], ["c", "3"]]);
    await s.master.delete("a");
    assert.ok(s.shipped.length > 0);
    let lsn = 0;
    for (const records of s.shipped) {
      const reply = await applier.handle(words("LOG", records), 1, "m:1");
      assert.equal(reply.type, "integer");
      lsn = (reply as { value: number }).value;
    }
    assert.equal(lsn, s.master.lastLsn);
    assert.equal(s.replica.lastLsn, s.master.lastLsn);
    assert.equal(dec(s.replica.read("b")), "2");
    assert.equal(s.replica.read("a"), undefined);
    const again = await applier.handle(words("LOG", s.shipped[0]), 1, "m:1");
    assert.deepEqual(again, { type: "integer", value: lsn, durableLsn: lsn }, "resend skipped");
    await s.replica.whenDurable(lsn);
    assert.deepEqual(applier.handle(words("PING"), 1, "m:1"), { type: "integer", value: lsn });
    await s.replica.whenDurable(lsn);
    let masterCrc = 0;
    for await (const chunk of s.master.replicationLog.readLogFrom(lsn - 1)) {
      masterCrc = new DataView(chunk.buffer, chunk.byteOffset).getUint32(0, true);
      break;
    }
    assert.notEqual(masterCrc, 0);
    assert.deepEqual(
      await applier.handle(words("HELLO", "0", String(lsn), "1000", "500"), 2, "m"),
      {
        type: "status",
        text: `${lsn} 0 ${masterCrc}`,
      },
      "a reconnecting master learns the CRC of the replica's last record, to compare with its own",
    );
    const info = applier.getInfo();
    assert.equal(info.masterLinkStatus, "up");
    assert.equal(info.lastAppliedLsn, lsn);
  });
});

Deno.test("applier: a newer HELLO supersedes the older stream", async () => {
  await withStores(async (s) => {
    const applier = new ReplicaApplier(replicaStoreOf(s.replica));
    assert.throws(() => applier.handle(words("PING"), 1, "m:1"), /before REPLICATE HELLO/);
    await applier.handle(words("HELLO", "0", "0", "1000", "500"), 1, "m:1");
    await applier.handle(words("HELLO", "0", "0", "1000", "500"), 2, "m:2");
    assert.throws(
      () => applier.handle(words("LOG", new Uint8Array()), 1, "m:1"),
      /superseded by a newer REPLICATE HELLO/,
    );
    assert.equal(applier.getInfo().masterAddress, "m:2");
  });
});

Deno.test("applier: the spec's REPLICATE PUT/BATCHPUT/DELETE are local writes", async () => {
  await withStores(async (s) => {
    const applier = new ReplicaApplier(replicaStoreOf(s.replica));
    assert.deepEqual(await applier.handle(words("PUT", "testkey", "testvalue"), 7, "c"), {
      type: "ok",
    });
    assert.deepEqual(
      await applier.handle(words("BATCHPUT", "k1", "v1", "k2", "v2"), 7, "c"),
      { type: "ok" },
    );
    assert.deepEqual(await applier.handle(words("DELETE", "k1"), 7, "c"), { type: "ok" });
    assert.equal(dec(s.replica.read("testkey")), "testvalue");
    assert.equal(dec(s.replica.read("k2")), "v2");
    assert.equal(s.replica.read("k1"), undefined);
    assert.equal(s.replica.lastLsn, 0, "local writes take no master LSN");
    await s.master.put("m", "1");
    const reply = await applier.handle(words("HELLO", "0", "1", "1000", "500"), 8, "m");
    assert.deepEqual(reply, { type: "status", text: "0 0 0" });
    await applier.handle(words("LOG", s.shipped[0]), 8, "m");
    assert.equal(s.replica.lastLsn, 1, "the master's stream continues after local writes");
  });
});

Deno.test("applier: bad requests get errors that say what is wrong", async () => {
  await withStores(async (s) => {
    const applier = new ReplicaApplier(replicaStoreOf(s.replica));
    assert.throws(
      () => applier.handle(words("FROB"), 1, "c"),
      /unknown REPLICATE subcommand "FROB"/,
    );
    assert.throws(() => applier.handle(words("PUT", "k"), 1, "c"), ReplicateError);
    await assert.rejects(
      async () => await applier.handle(words("HELLO", "x", "0", "1", "1"), 1, "c"),
      /epoch "x"/,
    );
    await applier.handle(words("HELLO", "0", "0", "1000", "500"), 1, "m");
    assert.throws(
      () => applier.handle(words("LOG", enc("not a record at all, just bytes..")), 1, "m"),
      /damaged/,
    );
  });
});

Deno.test("applier: a full sync replaces the replica's contents with the master's snapshot", async () => {
  await withStores(async (s) => {
    const applier = new ReplicaApplier(replicaStoreOf(s.replica));
    await s.replica.put("stale", "local junk");
    for (let i = 0; i < 50; i++) await s.master.put(`k${i}`, `v${i}`);
    await s.master.delete("k7");
    const snapshot = await s.master.replicationLog.snapshot();
    const writer = new PairChunkWriter(256);
    const chunks: Uint8Array[] = [];
    for await (const [key, value] of snapshot.entries) {
      if (writer.wouldOverflow(key, value)) chunks.push(writer.take());
      writer.add(key, value);
    }
    chunks.push(writer.take());
    snapshot.release();
    assert.ok(chunks.length > 1);
    const lsn = String(snapshot.lsn);
    await applier.handle(words("HELLO", "0", lsn, "1000", "500"), 3, "m");
    assert.deepEqual(
      await applier.handle(words("SNAPSHOT", "BEGIN", lsn, "0", "49", "0"), 3, "m"),
      {
        type: "ok",
      },
    );
    assert.equal(applier.getInfo().fullSyncInProgress, true);
    let count = 0;
    for (const chunk of chunks) {
      const reply = await applier.handle(words("SNAPSHOT", "CHUNK", chunk), 3, "m");
      count = (reply as { value: number }).value;
    }
    assert.equal(count, 49);
    assert.deepEqual(await applier.handle(words("SNAPSHOT", "END", lsn), 3, "m"), {
      type: "integer",
      value: snapshot.lsn,
    });
    assert.equal(s.replica.lastLsn, snapshot.lsn);
    assert.equal(s.replica.read("stale"), undefined, "the old contents are gone");
    assert.equal(s.replica.read("k7"), undefined);
    assert.equal(dec(s.replica.read("k8")), "v8");
    const before = s.shipped.length;
    await s.master.put("after", "snapshot");
    for (const records of s.shipped.slice(before)) {
      await applier.handle(words("LOG", records), 3, "m");
    }
    assert.equal(dec(s.replica.read("after")), "snapshot", "the log continues after the snapshot");
  });
});

Deno.test("applier: the master's connection closing abandons an unfinished full sync", async () => {
  await withStores(async (s) => {
    const applier = new ReplicaApplier(replicaStoreOf(s.replica));
    await s.replica.put("kept", "old contents");
    await applier.handle(words("HELLO", "0", "9", "1000", "500"), 4, "m");
    await applier.handle(words("SNAPSHOT", "BEGIN", "9", "0", "1", "0"), 4, "m");
    assert.equal(applier.getInfo().fullSyncInProgress, true);
    applier.connectionClosed(5); // another connection: nothing happens
    assert.equal(applier.getInfo().masterLinkStatus, "up");
    applier.connectionClosed(4);
    const info = applier.getInfo();
    assert.equal(info.fullSyncInProgress, false);
    assert.equal(info.masterLinkStatus, "down");
    await waitUntil("full sync aborted", async () => {
      try {
        await s.replica.put("after", "abort");
        return true;
      } catch {
        return false;
      }
    });
    assert.equal(dec(s.replica.read("kept")), "old contents");
    assert.throws(() => applier.handle(words("PING"), 4, "m"), /before REPLICATE HELLO/);
  });
});

Deno.test("subcommand words match in any case; other bytes are shown as UTF-8", () => {
  assert.equal(upper(enc("log")), "LOG");
  assert.equal(upper(enc("Snapshot")), "SNAPSHOT");
  assert.equal(upper(enc("")), "");
  assert.equal(upper(enc("zé")), "ZÉ");
  assert.equal(upper(enc("a-very-long-subcommand")), "A-VERY-LONG-SUBCOMMAND");
});

Deno.test("applier: INFO's lag behind the master, from HELLO, PINGs and frames, with a clock", async () => {
  await withStores(async (s) => {
    let nowMs = 1_000;
    const applier = new ReplicaApplier(replicaStoreOf(s.replica), () => nowMs);
    for (let i = 0; i < 5; i++) await s.master.put(`k${i}`, "v");
    // The master says it holds LSN 5; the replica holds nothing yet: 5 records behind.
    await applier.handle(words("HELLO", "0", "5", "1000", "500", "127.0.0.1:5555"), 1, "m:40000");
    nowMs += 250;
    let info = applier.getInfo();
    assert.deepEqual([info.masterKnownLsn, info.masterLagRecords, info.masterLagMs], [5, 5, 250]);
    assert.equal(info.masterAdvertisedAddress, "127.0.0.1:5555");
    for (const records of s.shipped) await applier.handle(words("LOG", records), 1, "m:40000");
    info = applier.getInfo();
    assert.deepEqual([info.masterLagRecords, info.masterLagMs], [0, 0]);
    // An idle link's PING carries the master's LSN: two writes it has not sent yet.
    nowMs += 1_000;
    assert.deepEqual(await applier.handle(words("PING", "7"), 1, "m:40000"), {
      type: "integer",
      value: 5,
    });
    nowMs += 40;
    info = applier.getInfo();
    assert.deepEqual([info.masterKnownLsn, info.masterLagRecords, info.masterLagMs], [7, 2, 40]);
    // A PING without it (an older master) changes nothing; a bad one is refused.
    await applier.handle(words("PING"), 1, "m:40000");
    assert.equal(applier.getInfo().masterLagRecords, 2);
    await assert.rejects(
      async () => await applier.handle(words("PING", "-1"), 1, "m:40000"),
      ReplicateError,
    );
  });
});
