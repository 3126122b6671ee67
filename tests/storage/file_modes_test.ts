/**
 * Data files are private to the user that runs kvstore, whatever its umask (outside systemd the
 * usual 022 would make them world-readable): the data directory is created 0700 and every file in
 * it 0600 — segments, hints, LOCK, NODE_STATE, compaction output, a full sync's files — and so is
 * a backup.
 */
import assert from "node:assert/strict";
import { KVClient } from "../../mod.ts";
import { backupTo } from "../../src/backup/backup_to.ts";
import { nodeOptions } from "../../src/cli/serve.ts";
import { loadConfig } from "../../src/config.ts";
import { writeNodeState } from "../../src/replication/node_state.ts";
import { KVStore } from "../../src/storage/mod.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { withTempDir } from "../helpers/temp_dir.ts";
import { startTestServer } from "../helpers/test_server.ts";

/** Every path under `dir` (itself included) whose mode lets group or others in. */
async function exposed(dir: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (path: string) => {
    const info = await Deno.stat(path);
    if (((info.mode ?? 0) & 0o077) !== 0) {
      found.push(`${path} ${((info.mode ?? 0) & 0o777).toString(8)}`);
    }
    if (!info.isDirectory) return;
    for await (const entry of Deno.readDir(path)) await visit(`${path}/${entry.name}`);
  };
  await visit(dir);
  return found;
}

Deno.test({
  name: "file modes: the data directory is 0700 and every data file 0600",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir(async (work) => {
      await Deno.chmod(work, 0o755);
      const dir = `${work}/data`;
      const store = await KVStore.open(dir, {
        fsync: "no",
        segmentSizeBytes: 4096,
        compactionMinBytes: 0,
        compactionThreshold: 0.1,
      });
      try {
        for (let i = 0; i < 400; i++) store.writePut(`k${i % 20}`, "v".repeat(64));
        await store.whenDurable(store.lastLsn);
        await store.compact();
        await writeNodeState(dir, { highestEpochSeen: 1 });
      } finally {
        await store.close();
      }
      const names = [...Deno.readDirSync(dir)].map((entry) => entry.name);
      assert.ok(names.some((name) => name.endsWith(".hint")), names.join(" "));
      assert.ok(names.includes("NODE_STATE.json"), names.join(" "));
      assert.deepEqual(await exposed(dir), []);
    }, "kvstore-modes-");
  },
});

Deno.test({
  name: "file modes: a backup directory and its files are private too",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const overrides = { FSYNC: "no" as const };
    const { config } = loadConfig({ overrides });
    await using server = await startTestServer(overrides, await nodeOptions(config));
    await using client = new KVClient({ port: server.port, timeoutMs: 5000 });
    await client.put("k", "v");
    await withTempDir(async (work) => {
      await Deno.chmod(work, 0o755);
      await backupTo(client, `${work}/backup`);
      assert.deepEqual(await exposed(`${work}/backup`), []);
      assert.deepEqual(await exposed(server.dataDir), []);
    }, "kvstore-modes-");
  },
});

Deno.test({
  name: "file modes: a server on a data directory others can read says so at start",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir(async (dir) => {
      await Deno.chmod(dir, 0o755);
      {
        await using server = await startServerProcess({ args: ["--fsync", "no"], dataDir: dir });
        const line = server.logs.find((entry) => entry.properties.event === "data_dir_open");
        assert.equal(line?.properties.mode, "755");
        assert.equal(line?.level, "WARN");
      }
      await Deno.chmod(dir, 0o700);
      await using server = await startServerProcess({ args: ["--fsync", "no"], dataDir: dir });
      assert.ok(!server.logs.some((entry) => entry.properties.event === "data_dir_open"));
    }, "kvstore-modes-");
  },
});
