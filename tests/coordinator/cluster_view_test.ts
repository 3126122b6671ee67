/**
 * The coordinator's view of etcd (`cluster_view.ts`) without etcd: full reads and watch events
 * arriving in either order only move it forward, and "the leader is gone" is noticed once.
 */
import assert from "node:assert/strict";
import { ClusterView } from "../../src/coordinator/cluster_view.ts";
import type { EtcdKeyValue } from "../../src/coordinator/etcd_client.ts";
import { clusterKeys, formatLeader } from "../../src/coordinator/records.ts";

const keys = clusterKeys("t");

function kv(key: string, value: string, modRevision: number, lease = "0"): EtcdKeyValue {
  return { key, value, createRevision: modRevision, modRevision, lease };
}

/** The leader's name (a function: TypeScript does not narrow it across calls then). */
const leaderName = (view: ClusterView) => view.leader?.name;

const leaderKv = (revision: number) =>
  kv(keys.leader, formatLeader({ name: "n1", address: "h:1", epoch: 3 }), revision, "7");

Deno.test("cluster view: a read older than the watch's events is dropped", () => {
  const gone: number[] = [];
  const view = new ClusterView(keys, (_previous, revision) => gone.push(revision));
  view.applyRead([leaderKv(5), kv(keys.epoch, "3", 5)], 10, 0);
  assert.equal(view.leader?.name, "n1");
  assert.equal(view.leader?.lease, "7");
  assert.equal(view.epochValue, 3);
  // The watch says the leader key was deleted at 12; a read answered at 11 arrives after.
  view.applyEvents([{ type: "DELETE", kv: kv(keys.leader, "", 12) }], 100);
  assert.equal(view.leader, undefined);
  assert.deepEqual(view.leaderGone, { revision: 12, atMs: 100, formerLeader: "n1" });
  view.applyRead([leaderKv(5)], 11, 200);
  assert.equal(view.leader, undefined, "the older read put the old leader back");
  assert.deepEqual(gone, [12]);
});

Deno.test("cluster view: watch events a read covered are skipped", () => {
  const view = new ClusterView(keys, () => {});
  view.applyRead([kv(`${keys.nodes}n1`, "h:1", 3)], 20, 0);
  assert.equal(view.leader, undefined);
  assert.deepEqual(view.leaderGone, { revision: 20, atMs: 0 });
  // A lagging watch replays the leader's put at 15: the read at 20 already saw it deleted.
  view.applyEvents([{ type: "PUT", kv: leaderKv(15) }], 10);
  assert.equal(view.leader, undefined);
  view.applyEvents([{ type: "PUT", kv: leaderKv(21) }], 10);
  assert.equal(leaderName(view), "n1");
  assert.equal(view.leaderGone, undefined);
  assert.deepEqual([...view.nodes], ["n1"]);
  // A member record someone wrote by hand is ignored; the next epoch is above every one known.
  view.applyEvents([{ type: "PUT", kv: kv(`${keys.members}x`, "{not json", 22) }], 10);
  assert.equal(view.members.size, 0);
  assert.equal(view.nextEpoch(5), 6);
});
