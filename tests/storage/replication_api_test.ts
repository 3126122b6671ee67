import assert from "node:assert/strict";
import { KVStore, ReplicationStreamError } from "../../src/storage/mod.ts";
import { recordLsn } from "../../src/storage/record.ts";
import { text, withTempDir } from "../helpers/storage.ts";

function lsnsOf(records: Uint8Array): number[] {
  const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
  const lsns: number[] = [];
  for (let at = 0; at < records.length; at += view.getUint32(at + 4, true)) {
    lsns.push(recordLsn(view, at));
  }
  return lsns;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

async function collect(iterable: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of iterable) chunks.push(chunk);
  return chunks;
}

Deno.test("appendReplicated applies the master's records with its LSNs, idempotently", async () => {
  await withTempDir(async (dir) => {
    const master = await KVStore.open(`${dir}/master`);
    const replica = await KVStore.open(`${dir}/replica`, { replica: true });
    try {
      const shipped: Uint8Array[] = [];
      master.replicationLog.onDurable((records) => shipped.push(records));
      master.epoch = 3;
      await master.put("a", "1");
      await master.batchPut([["b", "2"], ["c", "3"]]);
      await master.delete("a");
      const stream = concat(shipped);
      assert.equal(await replica.replicationLog.appendReplicated(stream), 3);
      assert.equal(await replica.replicationLog.appendReplicated(stream), 3, "a resend is skipped");
      assert.equal(replica.read("a"), undefined);
      assert.equal(text(replica.read("c")), "3");
      assert.equal(replica.replicationLog.lastEpoch, 3);
      const local = await replica.put("local", "x");
      assert.equal(local, 3, "a direct write on a replica reuses the last LSN");
      await master.put("d", "4");
      assert.equal(await replica.replicationLog.appendReplicated(shipped[shipped.length - 1]), 4);
      assert.equal(text(replica.read("local")), "x");
      await master.put("e", "5");
      const last = shipped[shipped.length - 1];
      assert.equal(
        replica.replicationLog.writeReplicated(last),
        5,
        "writeReplicated returns the last LSN",
      );
      assert.equal(text(replica.read("e")), "5", "and applies it before it is durable");
      assert.equal(replica.replicationLog.writeReplicated(last), 5, "a resend is skipped");
      await replica.whenDurable(5);
    } finally {
      await master.close();
      await replica.close();
    }
    const reopened = await KVStore.open(`${dir}/replica`, { replica: true });
    assert.equal(reopened.lastLsn, 5);
    assert.equal(text(reopened.read("d")), "4");
    assert.equal(text(reopened.read("e")), "5");
    assert.equal(text(reopened.read("local")), "x");
    await reopened.close();
  });
});

Deno.test("appendReplicated refuses a gap and a damaged record, applying nothing", async () => {
  await withTempDir(async (dir) => {
    const master = await KVStore.open(`${dir}/master`);
    const replica = await KVStore.open(`${dir}/replica`, { replica: true });
    try {
      const shipped: Uint8Array[] = [];
      master.replicationLog.onDurable((records) => shipped.push(records));
      await master.put("a", "1");
      await master.put("b", "2");
      assert.throws(() => replica.replicationLog.appendReplicated(shipped[1]), (error: Error) => {
        assert.ok(error instanceof ReplicationStreamError);
        assert.match(error.message, /LSN 2 .* continues at LSN 1/);
        return true;
      });
      const damaged = concat(shipped);
      damaged[damaged.length - 1] ^= 1;
      assert.throws(
        () => replica.replicationLog.appendReplicated(damaged),
        /damaged: CRC mismatch/,
      );
      assert.equal(replica.lastLsn, 0);
      assert.equal(replica.size, 0);
    } finally {
      await master.close();
      await replica.close();
    }
  });
});

Deno.test("readLogFrom returns every durable record after an LSN, across segments", async () => {
  await withTempDir(async (dir) => {
    const master = await KVStore.open(dir, { segmentSizeBytes: 4096 });
    try {
      for (let i = 0; i < 400; i++) master.writePut(`key${i % 50}`, `value${i}`);
      await master.whenDurable(master.lastLsn);
      assert.ok(master.stats().segments > 3);
      for (const after of [0, 1, 57, 399, 400]) {
        const chunks = await collect(master.replicationLog.readLogFrom(after, 1000));
        assert.ok(chunks.every((chunk) => chunk.length <= 1000));
        const lsns = chunks.flatMap(lsnsOf);
        assert.deepEqual(lsns, Array.from({ length: 400 - after }, (_, i) => after + 1 + i));
      }
      await withTempDir(async (replicaDir) => {
        const replica = await KVStore.open(replicaDir, { replica: true });
        try {
          for await (const chunk of master.replicationLog.readLogFrom(0)) {
            await replica.replicationLog.appendReplicated(chunk);
          }
          assert.deepEqual(replica.readRange("", "~"), master.readRange("", "~"));
        } finally {
          await replica.close();
        }
      });
    } finally {
      await master.close();
    }
  });
});
