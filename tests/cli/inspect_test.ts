/**
 * `kvstore inspect --data-dir D` describes a data directory and never writes to it: every file's
 * bytes and modification time are the same afterwards, and no file appears or goes.
 */
import assert from "node:assert/strict";
import { KVClient } from "../../mod.ts";
import { kvstore } from "../helpers/cli.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

interface FileState {
  bytes: Uint8Array;
  mtimeMs: number | undefined;
}

async function snapshot(dir: string): Promise<Map<string, FileState>> {
  const files = new Map<string, FileState>();
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    files.set(entry.name, {
      bytes: await Deno.readFile(path),
      mtimeMs: (await Deno.stat(path)).mtime?.getTime(),
    });
  }
  return files;
}

Deno.test("inspect: keys, LSN range, epoch and segment health, read-only (bytes and mtimes unchanged)", async () => {
  await withTempDir(async (dataDir) => {
    // Small segments: several of them, sealed ones with hint files.
    const node = await startServerProcess({
      dataDir,
      args: ["--fsync", "no", "--segment-size-bytes", "4096"],
    });
    try {
      await using client = new KVClient({ port: node.port });
      for (let i = 0; i < 60; i++) {
        await client.put(`key${String(i).padStart(2, "0")}`, "v".repeat(100));
      }
      await client.batchPut([["batch1", "x"], ["batch2", "y"]]);
      await client.delete("key00");
      // A node runs: inspect says so (and still reads), without touching its files.
      const running = await kvstore(["inspect", "--data-dir", dataDir, "--json"]);
      assert.equal(running.code, 0, running.stderr);
      const live = JSON.parse(running.stdout.split("\n")[0]);
      assert.equal(live.runningNode.pid, node.pid);
      assert.equal(live.runningNode.address, `127.0.0.1:${node.port}`);
      assert.equal((await node.stop()).code, 0);
    } finally {
      await node.kill();
    }
    const before = await snapshot(dataDir);
    assert.ok([...before.keys()].filter((name) => name.endsWith(".log")).length >= 2);

    const text = await kvstore(["inspect", "--data-dir", dataDir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^data directory .* \(read only: nothing in it was changed\)\n/);
    assert.match(text.stdout, /\nLSN range: 1\.\.62\n/);
    assert.match(text.stdout, /\nepoch: 0 \(highest in the log\)/);
    assert.match(text.stdout, /\nkeys: 61 live \(/);
    assert.match(text.stdout, /sealed .*hint yes: ok\n/);
    assert.match(text.stdout, /\nhealth: ok\n$/);
    assert.doesNotMatch(text.stdout, /in use by/);

    const json = await kvstore(["inspect", "--data-dir", dataDir, "--json", "--keys"]);
    const [summary, ...keyLines] = json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.equal(summary.liveKeys, 61);
    assert.equal(summary.liveValueBytes, 59 * 100 + 2);
    assert.deepEqual([summary.firstLsn, summary.lastLsn, summary.healthy], [1, 62, true]);
    assert.equal(keyLines.length, 61);
    assert.deepEqual(keyLines[0], { key: "batch1" });
    assert.ok(!keyLines.some((line) => line.key === "key00"));

    // Not a byte, not a time, not a file changed.
    assert.deepEqual(await snapshot(dataDir), before);

    // A damaged sealed segment is reported with its offset, and still nothing is written.
    const sealed = [...before.keys()].filter((name) => name.endsWith(".log")).sort()[0];
    const bytes = (await Deno.readFile(`${dataDir}/${sealed}`)).slice();
    bytes[200] ^= 0xff;
    await Deno.writeFile(`${dataDir}/${sealed}`, bytes);
    const damaged = await snapshot(dataDir);
    const report = await kvstore(["inspect", "--data-dir", dataDir]);
    assert.equal(report.code, 1);
    assert.match(report.stdout, new RegExp(`${sealed} .*CORRUPT at offset \\d+: `));
    assert.match(report.stdout, /\nhealth: CORRUPT \(the node will refuse to start\)\n$/);
    assert.deepEqual(await snapshot(dataDir), damaged);

    const missing = await kvstore(["inspect", "--data-dir", `${dataDir}/nope`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*nope: no such directory/);
    assert.equal(await Deno.stat(`${dataDir}/nope`).then(() => true, () => false), false);
  }, "kvstore-inspect-");
});
