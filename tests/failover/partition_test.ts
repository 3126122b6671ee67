/**
 * The master cut off from etcd only (a fault proxy between it and etcd goes silent) while its
 * clients still reach it, in async mode, where nothing but the lease fence stops a second master:
 * it must stop acknowledging writes before the new master acknowledges its first, rejoin as a
 * replica once it reaches etcd again, and count what it discards. Real etcd, real processes,
 * lease TTL 2 s. Skipped, saying why, without the `etcd` binary.
 */
import assert from "node:assert/strict";
import { CLUSTER_TEST, type KvNode, withClusterDir } from "../helpers/cluster.ts";
import { startCoordinatedNode, waitForMaster } from "../helpers/coordinated.ts";
import { etcdMissing, startEtcd } from "../helpers/etcd.ts";
import { assertConverged, missingKeys, wholeCluster, WriteLoad } from "../helpers/failover_load.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";

const missing = etcdMissing();

/** Writes to `node` only, every 10 ms, until `until()`; the times of its OKs. */
async function stubbornWriter(node: KvNode, until: () => boolean): Promise<number[]> {
  const oks: number[] = [];
  for (let i = 0; !until(); i++) {
    try {
      if (await node.send(["SET", `stubborn:${i}`, "x"]) === "OK") oks.push(performance.now());
    } catch {
      // refused or reset: it keeps trying the same node, as a client that never looks elsewhere
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return oks;
}

Deno.test({
  name: "failover: a master partitioned from etcd only stops acknowledging before the new " +
    "master's first OK, rejoins as a replica when healed, and counts what it discards",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-partition-", async (dir) => {
      await using etcd = await startEtcd();
      const etcdPort = Number(new URL(etcd.endpoints[0]).port);
      const names = ["n1", "n2", "n3"];
      const proxies = new Map(names.map((name) => [name, FaultProxy.start(etcdPort)]));
      const args = (name: string) => [
        "--etcd-endpoints",
        `http://127.0.0.1:${proxies.get(name)?.port}`,
      ];
      const nodes = new Map<string, KvNode>();
      try {
        for (
          const node of await Promise.all(
            names.map((name) => startCoordinatedNode(dir, etcd, name, { args: args(name) })),
          )
        ) nodes.set(node.name, node);
        await wholeCluster([...nodes.values()]);
        const load = new WriteLoad(() => [...nodes.values()], 8);
        let newMasterFirstOkMs = Infinity;
        let old: KvNode | undefined;
        let stubborn: Promise<number[]> = Promise.resolve([]);
        try {
          await load.waitForAcks(200);
          old = await waitForMaster([...nodes.values()]);
          const master = old;
          const cutAt = performance.now();
          proxies.get(master.name)?.setMode("blackhole");
          let stopStubborn = false;
          stubborn = stubbornWriter(master, () => stopStubborn);
          const next = await waitForMaster([...nodes.values()].filter((n) => n !== master), 20_000);
          newMasterFirstOkMs = cutAt + await load.waitForAckElsewhere(master.port, cutAt);
          assert.notEqual(next.port, master.port);
          // Clients keep reaching the old master for a while after the new one took over.
          await load.waitForAcks(200);
          stopStubborn = true;
          const oldOks = [...load.ackedBy(master.port).map((a) => a.atMs), ...await stubborn];
          const late = oldOks.filter((atMs) => atMs >= newMasterFirstOkMs);
          assert.equal(late.length, 0, `the old master acknowledged ${late.length} writes late`);
          assert.match(
            (await master.info()).get("coordinator_write_fence") ?? "",
            /lease|leader key/,
            "the old master says why it refuses writes",
          );
          proxies.get(master.name)?.setMode("pass");
          await wholeCluster([...nodes.values()]);
          await load.waitForAcks(100);
        } finally {
          await load.stop();
        }
        const final = await assertConverged([...nodes.values()]);
        // Async mode may lose the old master's last OKs; each is one it discarded and counted.
        const lost = await missingKeys(final, load.acked);
        const oldPort = old?.port;
        assert.ok(
          load.acked.filter((a) => lost.includes(a.key)).every((a) => a.port === oldPort),
          "only writes the old master acknowledged may be lost",
        );
        const discarded = Number((await old?.info())?.get("discarded_records") ?? 0);
        assert.ok(lost.length <= discarded, `${lost.length} lost, ${discarded} counted`);
      } finally {
        await Promise.all([...proxies.values()].map((p) => p.close()));
      }
    }),
});
