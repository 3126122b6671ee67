/**
 * The pure parts of a node's role, without a node: the rules of a role change
 * (`role_rules.ts`), the node state as a running node keeps it (`KeptNodeState`, on a real
 * directory), and what a forwarding replica reports about its chain (`chainReportOf`).
 */
import assert from "node:assert/strict";
import { chainReportOf } from "../../src/replication/forwarder_side.ts";
import { KeptNodeState, readNodeState } from "../../src/replication/node_state.ts";
import {
  checkFollowEpoch,
  checkPromotion,
  newerEpochOf,
  type PromotionFacts,
  promotionReplicas,
  refusalOutcome,
  RoleChangeError,
} from "../../src/replication/role_rules.ts";
import { MAX_EPOCH } from "../../src/storage/mod.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const REPLICA: PromotionFacts = {
  changing: false,
  replica: true,
  ownEpoch: 1,
  knownEpoch: 3,
  keyFilter: [],
  fullSyncInProgress: false,
};

Deno.test("role rules: a promotion takes the next epoch, or the one given above every known", () => {
  assert.equal(checkPromotion(REPLICA), 4);
  assert.equal(checkPromotion({ ...REPLICA, epoch: 9 }), 9);
  assert.throws(() => checkPromotion({ ...REPLICA, epoch: 3 }), /knows epoch 3 already/);
  assert.throws(() => checkPromotion({ ...REPLICA, epoch: 2.5 }), RoleChangeError);
  assert.throws(
    () => checkPromotion({ ...REPLICA, knownEpoch: MAX_EPOCH }),
    new RegExp(`above ${MAX_EPOCH}`),
  );
});

Deno.test("role rules: no promotion of a master, a filtered or syncing replica, or during a change", () => {
  assert.throws(() => checkPromotion({ ...REPLICA, changing: true }), /already running/);
  assert.throws(
    () => checkPromotion({ ...REPLICA, replica: false }),
    /already a master \(epoch 1\)/,
  );
  assert.throws(() => checkPromotion({ ...REPLICA, keyFilter: ["a:", "b:"] }), /\[a:,b:\]/);
  assert.throws(() => checkPromotion({ ...REPLICA, fullSyncInProgress: true }), /full sync/);
});

Deno.test("role rules: a node follows no epoch older than it knows, and only epochs in range", () => {
  checkFollowEpoch(undefined, 5);
  checkFollowEpoch(5, 5);
  checkFollowEpoch(6, 5);
  assert.throws(() => checkFollowEpoch(4, 5), /older than epoch 5.*deposed/);
  assert.throws(() => checkFollowEpoch(-1, 0), /whole number/);
  assert.throws(() => checkFollowEpoch(MAX_EPOCH + 1, 0), /whole number/);
});

Deno.test("role rules: a promoted node keeps its sub-replicas, then the ones asked for, each once", () => {
  const a = { host: "10.0.0.1", port: 5555 };
  const b = { host: "10.0.0.2", port: 5555 };
  const c = { host: "10.0.0.3", port: 5555 };
  assert.deepEqual(promotionReplicas([a, b], [b, c, a]), [a, b, c]);
  assert.deepEqual(promotionReplicas([], []), []);
});

Deno.test("role rules: STALEEPOCH deposes a master, teaches a forwarder, other refusals change nothing", () => {
  const refusal = { address: "r:1", code: "STALEEPOCH", message: "7 is the newest epoch" };
  assert.equal(newerEpochOf(refusal.message), 7);
  assert.equal(newerEpochOf("no epoch here"), undefined);
  assert.deepEqual(refusalOutcome(refusal, { replica: false, knownEpoch: 3 }), {
    kind: "depose",
    epoch: 7,
    reason: "replica r:1 follows a newer master: 7 is the newest epoch",
  });
  assert.deepEqual(refusalOutcome(refusal, { replica: true, knownEpoch: 3 }), {
    kind: "learn",
    epoch: 7,
  });
  assert.deepEqual(refusalOutcome(refusal, { replica: true, knownEpoch: 7 }), { kind: "none" });
  const unnamed = { ...refusal, message: "a newer master exists" };
  assert.equal(refusalOutcome(unnamed, { replica: false, knownEpoch: 3 }).kind, "depose");
  assert.deepEqual(refusalOutcome(unnamed, { replica: true, knownEpoch: 3 }), {
    kind: "learn",
    epoch: 4,
  });
  assert.deepEqual(
    refusalOutcome({ ...refusal, code: "ERR" }, { replica: false, knownEpoch: 3 }),
    { kind: "none" },
  );
});

Deno.test("kept node state: each change is on disk before it is kept; undefined fields left out", async () => {
  await withTempDir(async (dir) => {
    const kept = new KeptNodeState(dir, { highestEpochSeen: 2 });
    kept.rememberEpoch(1);
    assert.deepEqual(await readNodeState(dir), { highestEpochSeen: 0 }, "an older epoch: no write");
    kept.rememberEpoch(5);
    kept.countLocalWrite();
    kept.countLocalWrite();
    kept.holdKeyFilter(["a:"]);
    assert.deepEqual(await readNodeState(dir), {
      highestEpochSeen: 5,
      localWrites: 2,
      keyFilter: ["a:"],
    });
    assert.equal(kept.forgetLocalWrites(), 2);
    assert.equal(kept.forgetLocalWrites(), 0);
    kept.holdKeyFilter([]);
    assert.deepEqual(await readNodeState(dir), { highestEpochSeen: 5 });
    assert.deepEqual(kept.following("m:1", 3), { highestEpochSeen: 5, replicaOf: "m:1" });
    assert.deepEqual(kept.following("", 9), { highestEpochSeen: 9, replicaOf: undefined });
    kept.changeRole({ replicaOf: "m:1" }, { role: "replica", configured: "master" });
    const demoted = await readNodeState(dir);
    assert.equal(demoted.replicaOf, "m:1");
    assert.ok(demoted.demotedAt !== undefined);
    kept.changeRole({ replicaOf: undefined }, { role: "replica", configured: "replica" });
    assert.deepEqual(await readNodeState(dir), { highestEpochSeen: 5 });
    assert.deepEqual(kept.current, { highestEpochSeen: 5 });
    assert.throws(() => kept.rememberEpoch(MAX_EPOCH + 1), /impossible node state/);
    assert.deepEqual(kept.current, { highestEpochSeen: 5 }, "a refused state is not kept");
  });
});

Deno.test("chain report: a forwarder's origin and staleness, or its own log before it has a master", () => {
  assert.deepEqual(chainReportOf(undefined, 42), {
    originLsn: 42,
    originLagMs: 0,
    depth: 0,
    originAddress: "",
  });
  const info = {
    originKnownLsn: 100,
    stalenessMs: 250,
    originLagMs: 20,
    chainDepth: 2,
    originAddress: "m:1",
  };
  assert.deepEqual(chainReportOf(info, 42), {
    originLsn: 100,
    originLagMs: 250,
    depth: 2,
    originAddress: "m:1",
  });
  const cutOff = { ...info, stalenessMs: Infinity };
  assert.equal(chainReportOf(cutOff, 42).originLagMs, 20, "no master yet: the origin's lag");
});
