import assert from "node:assert/strict";
import { KVClient, KVServerError } from "../../mod.ts";
import { BACKUP_MANIFEST } from "../../src/backup/backup_to.ts";
import { nodeOptions } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config.ts";
import { kvstore } from "../helpers/cli.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const decoder = new TextDecoder();

Deno.test("backup --to DIR while writes go on: serving DIR gives exactly the data at its LSN", async () => {
  await withTempDir(async (work) => {
    // Small segments and eager compaction: the snapshot must survive segments being rewritten.
    await using source = await startServerProcess({
      args: [
        "--fsync",
        "no",
        "--segment-size-bytes",
        "16384",
        "--compaction-min-bytes",
        "0",
        "--compaction-threshold",
        "0.1",
      ],
    });
    await using client = new KVClient({ port: source.port, timeoutMs: 10_000 });
    // One writer: batch i (LSN i + 1 in a fresh store) adds seq:i and sets counter to i.
    let written = 0;
    let stop = false;
    const writer = (async () => {
      // Bounded: stops when asked, and in any case after 200,000 batches.
      while (!stop && written < 200_000) {
        await client.batchPut([[`seq:${written}`, "v".repeat(50)], ["counter", String(written)]]);
        written++;
      }
    })();
    try {
      // Bounded wait (10 s) for some history before the backup starts.
      for (let i = 0; i < 1000 && written < 3000; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const before = written;
      const backup = await kvstore([
        "backup",
        "--to",
        `${work}/copy`,
        "--port",
        String(source.port),
      ]);
      const after = written;
      assert.equal(backup.code, 0, backup.stderr);
      const match = /at LSN (\d+) \(epoch 0\): (\d+) keys/.exec(backup.stdout);
      assert.ok(match, backup.stdout);
      const lsn = Number(match[1]);
      assert.equal(Number(match[2]), lsn + 1);
      assert.ok(lsn >= before && lsn <= after + 1, `LSN ${lsn} not within ${before}..${after}`);
      assert.match(backup.stderr, /backup: \d+ of \d+ keys \(100%\)/);
      const manifest = JSON.parse(await Deno.readTextFile(`${work}/copy/${BACKUP_MANIFEST}`));
      assert.equal(manifest.lsn, lsn);
      assert.equal(manifest.source, `127.0.0.1:${source.port}`);

      stop = true;
      await writer;
      await using restored = await startServerProcess({ dataDir: `${work}/copy` });
      await using check = new KVClient({ port: restored.port, timeoutMs: 10_000 });
      assert.equal(await check.send(["DBSIZE"]), lsn + 1);
      assert.equal(await check.read("counter"), String(lsn - 1));
      assert.equal(await check.read(`seq:${lsn - 1}`), "v".repeat(50));
      assert.equal(await check.read(`seq:${lsn}`), undefined);
      const pairs = await check.readRange("seq:", "seq:~");
      assert.equal(pairs.length, lsn);
      assert.match(await check.info("storage"), new RegExp(`last_lsn:${lsn}\\r\\n`));
      // The source moved on; the copy did not.
      assert.ok(Number(await client.read("counter")) >= lsn);
    } finally {
      stop = true;
      await writer.catch(() => {});
    }
  }, "kvstore-backup-");
});

Deno.test("backup refuses a directory in use and leaves it alone", async () => {
  await using source = await startServerProcess({ args: ["--fsync", "no"] });
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/precious.txt`, "keep me");
    const result = await kvstore(["backup", "--to", dir, "--port", String(source.port)]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /is not empty: a backup goes into a new or empty directory/);
    assert.equal(await Deno.readTextFile(`${dir}/precious.txt`), "keep me");
    const usage = await kvstore(["backup", "--port", String(source.port)]);
    assert.equal(usage.code, 1);
    assert.match(usage.stderr, /usage: kvstore backup --to <dir>/);
  });
});

Deno.test("backups are bounded by MAX_BACKUPS and released when idle or finished", async () => {
  const overrides = { FSYNC: "no" as const, MAX_BACKUPS: 1, BACKUP_IDLE_TIMEOUT_SECONDS: 0.2 };
  const { config } = loadConfig({ overrides });
  await using server = await startTestServer(overrides, await nodeOptions(config));
  await using client = new KVClient({ port: server.port, timeoutMs: 5000 });
  await client.batchPut([["a", "1"], ["b", "2"]]);
  const [id] = await client.send(["BACKUP", "BEGIN"]) as [Uint8Array, number, number, number];
  await assert.rejects(
    client.send(["BACKUP", "BEGIN"]),
    (error) => error instanceof KVServerError && /MAX_BACKUPS is 1/.test(error.message),
  );
  assert.match(await client.info("backup"), /backups_running:1/);
  await new Promise((resolve) => setTimeout(resolve, 400));
  await assert.rejects(
    client.send(["BACKUP", "NEXT", id]),
    /no backup .* abandoned after BACKUP_IDLE_TIMEOUT_SECONDS 0\.2 s/,
  );
  const [second] = await client.send(["BACKUP", "BEGIN"]) as [Uint8Array];
  const chunk = await client.send(["BACKUP", "NEXT", second]) as Uint8Array[];
  assert.deepEqual(chunk.map((item) => decoder.decode(item)), ["a", "1", "b", "2"]);
  assert.deepEqual(await client.send(["BACKUP", "NEXT", second]), []);
  assert.match(await client.info("backup"), /backups_running:0/);
  await assert.rejects(client.send(["BACKUP", "FOO"]), /usage: BACKUP BEGIN/);
});

Deno.test("a backup keeps every TTL: the restored copy expires the same keys at the same times", async () => {
  await withTempDir(async (work) => {
    await using source = await startServerProcess({ args: ["--fsync", "no"] });
    await using client = new KVClient({ port: source.port, timeoutMs: 10_000 });
    await client.put("forever", "f");
    await client.put("hour", "h", { expireInMs: 3_600_000 });
    await client.send(["SET", "y2100", "y", "EXAT", "4102444800"]);
    await client.put("short", "s", { expireInMs: 1500 });
    const backup = await kvstore(["backup", "--to", `${work}/copy`, "--port", String(source.port)]);
    assert.equal(backup.code, 0, backup.stderr);
    await using restored = await startServerProcess({ dataDir: `${work}/copy` });
    await using check = new KVClient({ port: restored.port, timeoutMs: 10_000 });
    assert.equal(await check.send(["TTL", "forever"]), -1);
    const hour = await check.send(["TTL", "hour"]) as number;
    assert.ok(hour > 3500 && hour <= 3600, `TTL ${hour}`);
    assert.equal(await check.send(["EXPIRETIME", "y2100"]), 4102444800);
    // Bounded wait (5 s) for the short key to expire in the copy too.
    for (let i = 0; i < 50 && await check.read("short") !== undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(await check.read("short"), undefined);
    assert.equal(await check.read("forever"), "f");
  }, "kvstore-backup-");
});
