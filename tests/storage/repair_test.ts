import assert from "node:assert/strict";
import { CorruptionError, KVStore, repairStore } from "../../src/storage/mod.ts";
import { segmentFiles, text, withTempDir } from "../helpers/storage.ts";

Deno.test("repair reports what it would cut, changes nothing without apply, then repairs", async () => {
  await withTempDir(async (dir) => {
    let store = await KVStore.open(dir);
    for (let i = 0; i < 10; i++) await store.put(`k${i}`, `v${i}`);
    await store.close();
    const [segment] = segmentFiles(dir);
    const bytes = Deno.readFileSync(segment);
    const damagedAt = 40 + 36 * 4;
    bytes[damagedAt + 35] ^= 0xff;
    Deno.writeFileSync(segment, bytes);
    await assert.rejects(KVStore.open(dir), CorruptionError);

    const dryRun = await repairStore(dir, { apply: false });
    assert.equal(dryRun.healthy, false);
    assert.deepEqual(dryRun.actions.map((a) => [a.path, a.offset, a.lostBytes]), [
      [segment, damagedAt, bytes.length - damagedAt],
    ]);
    assert.deepEqual(Deno.readFileSync(segment), bytes, "a dry run changes nothing");

    const repaired = await repairStore(dir, { apply: true });
    assert.equal(repaired.healthy, true);
    store = await KVStore.open(dir);
    assert.equal(text(store.read("k3")), "v3");
    assert.equal(store.read("k4"), undefined);
    assert.equal(store.size, 4);
    await store.close();
  });
});

Deno.test("kvstore repair --data-dir runs from the command line", async () => {
  await withTempDir(async (dir) => {
    const store = await KVStore.open(dir);
    await store.put("a", "1");
    await store.close();
    const cli = new URL("../../cli.ts", import.meta.url).pathname;
    const result = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        cli,
        "repair",
        "--data-dir",
        dir,
      ],
    }).output();
    assert.equal(result.code, 0);
    assert.match(new TextDecoder().decode(result.stdout), /no damage found/);
  });
});
