/**
 * Failover scenarios with a real etcd and real processes (lease TTL 2 s): the master SIGKILLed
 * again and again under 8 writers, each time right after a burst of sync-mode OKs. Every round
 * checks that a new master takes writes and holds every write ever acknowledged; the end checks
 * that the three nodes hold the same data. Skipped, saying why, without the `etcd` binary.
 */
import assert from "node:assert/strict";
import { asText, CLUSTER_TEST, type KvNode, withClusterDir } from "../helpers/cluster.ts";
import {
  startCoordinatedCluster,
  startCoordinatedNode,
  waitForMaster,
} from "../helpers/coordinated.ts";
import { etcdMissing, startEtcd } from "../helpers/etcd.ts";
import {
  assertConverged,
  missingKeys,
  underLoad,
  wholeCluster,
  WriteLoad,
} from "../helpers/failover_load.ts";

const missing = etcdMissing();
const SYNC = ["--replication-mode", "sync", "--sync-replicas", "1"];
const ROUNDS = 5;
const BURST = 100;

/**
 * Sends a burst of pipelined writes to the master and SIGKILLs it the moment their replies are in,
 * once a burst got an OK: on a loaded machine a late lease renewal can fence the master for a
 * moment (every reply `-DEPOSED`), so a burst without any OK is retried, up to 5 times.
 */
async function burstThenKill(
  nodes: KvNode[],
  round: number,
): Promise<{ master: KvNode; oked: string[] }> {
  let firstReply = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const master = await waitForMaster(nodes);
    const conn = await master.connect();
    const keys = Array.from({ length: BURST }, (_, i) => `burst${round}.${attempt}:${i}`);
    const replies = await Promise.all(keys.map((k) => conn.send(["SET", k, k]).then(asText)));
    const oked = keys.filter((_, i) => replies[i] === "OK");
    if (oked.length > 0) await master.kill();
    conn.close();
    if (oked.length > 0) return { master, oked };
    firstReply = replies[0];
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`round ${round}: no OK in 5 bursts: ${firstReply}`);
}

Deno.test({
  name: `failover: the master SIGKILLed ${ROUNDS} times under 8 writers, right after a burst of ` +
    "sync-mode OKs: each time a new master holds every OK'd write; the nodes converge",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-failover-kills-", async (dir) => {
      await using etcd = await startEtcd();
      const nodes = new Map<string, KvNode>(
        (await startCoordinatedCluster(dir, etcd, 3, { args: SYNC })).map((n) => [n.name, n]),
      );
      const load = new WriteLoad(() => [...nodes.values()], 8);
      const burstKeys: string[] = [];
      try {
        for (let round = 1; round <= ROUNDS; round++) {
          await load.waitForAcks(100);
          const { master, oked } = await burstThenKill([...nodes.values()], round);
          burstKeys.push(...oked);
          const survivors = [...nodes.values()].filter((n) => n !== master);
          const next = await waitForMaster(survivors, 20_000);
          // Before the old master is back: the new one alone must hold every OK'd write.
          const acked = [...load.acked.map((a) => a.key), ...burstKeys];
          assert.deepEqual(
            await missingKeys(next, acked.map((key) => ({ key }))),
            [],
            `round ${round}: the new master ${next.name} lacks acknowledged writes`,
          );
          const back = await startCoordinatedNode(dir, etcd, master.name, {
            args: SYNC,
            port: master.port,
          });
          nodes.set(master.name, back);
          await wholeCluster([...nodes.values()]);
        }
      } finally {
        await load.stop();
      }
      const acked = [...load.acked.map((a) => a.key), ...burstKeys];
      await assertConverged([...nodes.values()], acked.map((key) => ({ key })));
    }),
});

Deno.test({
  name: "failover: sync mode, a replica down and then the master SIGKILLed: the stale replica " +
    "that returns never wins; the one holding every OK'd write does",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    underLoad(
      "kvstore-failover-stale-",
      SYNC,
      async ({ dir, etcd, started, nodes, master, load }) => {
        const [stale, current] = started.filter((n) => n !== master);
        await load.waitForAcks(100);
        await stale.kill();
        // The master and the other replica go on acknowledging writes the stale one lacks.
        await load.waitForAcks(300);
        await master.kill();
        const back = await startCoordinatedNode(dir, etcd, stale.name, {
          args: SYNC,
          port: stale.port,
        });
        nodes.set(stale.name, back);
        const next = await waitForMaster([back, current], 20_000);
        assert.equal(next.name, current.name, "the replica holding every OK'd write stands");
        assert.deepEqual(await missingKeys(next, load.acked), []);
        nodes.set(
          master.name,
          await startCoordinatedNode(dir, etcd, master.name, { args: SYNC, port: master.port }),
        );
        await wholeCluster([...nodes.values()]);
        await load.waitForAcks(100);
      },
    ),
});

Deno.test({
  name: "failover: every node SIGKILLed at once under 8 sync writers and restarted: the one " +
    "holding every OK'd write leads, nothing acknowledged is lost, the nodes converge",
  ignore: missing !== undefined,
  ...CLUSTER_TEST,
  fn: () =>
    underLoad("kvstore-failover-all-", SYNC, async ({ dir, etcd, started, nodes, load }) => {
      await load.waitForAcks(300);
      await Promise.all(started.map((n) => n.kill()));
      // Back in the reverse order of their names: the first one back must not simply win.
      for (const node of [...started].reverse()) {
        nodes.set(
          node.name,
          await startCoordinatedNode(dir, etcd, node.name, { args: SYNC, port: node.port }),
        );
      }
      const master = await wholeCluster([...nodes.values()]);
      assert.deepEqual(await missingKeys(master, load.acked), [], `${master.name} leads`);
      await load.waitForAcks(100);
    }),
});
