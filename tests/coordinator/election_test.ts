/**
 * Deterministic tests of the coordinator's decisions (`election.ts`): no etcd, no sockets, time
 * passed in. Who stands, who waits and why, the sync-mode quorum, following, stepping down, and
 * the fences a master's lease sets.
 */
import assert from "node:assert/strict";
import {
  ackFence,
  decide,
  type ElectionInput,
  type MemberRecord,
  type MemberView,
  type SelfFacts,
  writeFence,
} from "../../src/coordinator/election.ts";

function self(overrides: Partial<SelfFacts> = {}): SelfFacts {
  return {
    name: "n1",
    address: "127.0.0.1:1001",
    lease: "11",
    role: "replica",
    lsn: 10,
    lastEpoch: 1,
    epoch: 1,
    fullSync: false,
    diverged: false,
    filtered: false,
    changing: false,
    following: "",
    ...overrides,
  };
}

function member(
  name: string,
  modRevision: number,
  overrides: Partial<MemberRecord> = {},
): MemberView {
  return {
    modRevision,
    record: {
      name,
      address: `127.0.0.1:${1000 + Number(name.slice(1))}`,
      role: "replica",
      lsn: 10,
      lastEpoch: 1,
      epoch: 1,
      fullSync: false,
      diverged: false,
      filtered: false,
      healthy: true,
      lease: `${name.slice(1)}${name.slice(1)}`,
      reportedAtMs: 0,
      ...overrides,
    },
  };
}

/** The leader vanished at revision 100, at time 1000; now is 1000 + `waitedMs`. */
function input(overrides: Partial<ElectionInput> = {}, waitedMs = 0): ElectionInput {
  return {
    self: self(),
    leader: undefined,
    leaderGone: { revision: 100, atMs: 1000 },
    members: [member("n1", 101)],
    nodes: ["n1"],
    syncReplicas: undefined,
    settleMs: 500,
    nowMs: 1000 + waitedMs,
    ...overrides,
  };
}

Deno.test("election: the most up-to-date member stands once every member re-reported", () => {
  const members = [member("n1", 101, { lsn: 12 }), member("n2", 102, { lsn: 10 })];
  assert.deepEqual(
    decide(input({ self: self({ lsn: 12 }), members, nodes: ["n1", "n2", "n3"] }, 600)),
    { kind: "campaign" },
  );
  // The one behind waits, naming who is ahead.
  const behind = decide(input({ self: self({ name: "n2", lsn: 10 }), members }, 600));
  assert.equal(behind.kind, "wait");
  assert.match((behind as { reason: string }).reason, /n1 is more up to date/);
});

Deno.test("election: a member that has not re-reported holds the candidate for the settle time", () => {
  // n2's record predates the leader's disappearance (revision 90 < 100).
  const members = [member("n1", 101, { lsn: 12 }), member("n2", 90, { lsn: 5 })];
  const early = decide(input({ self: self({ lsn: 12 }), members }, 100));
  assert.deepEqual(early, { kind: "wait", reason: "waiting for n2 to report" });
  assert.deepEqual(decide(input({ self: self({ lsn: 12 }), members }, 500)), { kind: "campaign" });
  // A node the cluster had that did not register at all (a whole-cluster restart) too.
  const missing = decide(input({ self: self({ lsn: 12 }), nodes: ["n1", "n3"] }, 100));
  assert.deepEqual(missing, { kind: "wait", reason: "waiting for n3 to report" });
});

Deno.test("election: the settle does not wait for the leader whose key vanished", () => {
  // n3 held the leader key; its lease (and so its member record) ended with it: a dead master
  // never reports, so waiting for it would only add the whole settle time to every failover.
  const members = [member("n1", 101, { lsn: 12 }), member("n2", 102, { lsn: 10 })];
  const nodes = ["n1", "n2", "n3"];
  const gone = { revision: 100, atMs: 1000, formerLeader: "n3" };
  assert.deepEqual(
    decide(input({ self: self({ lsn: 12 }), members, nodes, leaderGone: gone }, 10)),
    { kind: "campaign" },
  );
  // Without knowing whose key it was (a node that just started), it still waits for n3.
  assert.deepEqual(
    decide(input({ self: self({ lsn: 12 }), members, nodes }, 10)),
    { kind: "wait", reason: "waiting for n3 to report" },
  );
  // The former leader back with a record of its own takes part like anyone: it is ahead here.
  const back = [...members, member("n3", 103, { lsn: 20 })];
  const behind = decide(input({ self: self({ lsn: 12 }), members: back, nodes, leaderGone: gone }));
  assert.match((behind as { reason: string }).reason, /n3 is more up to date/);
});

Deno.test("election: the epoch of the last record outranks a longer log of an older epoch", () => {
  // An old master back with 50 records of epoch 1 never written by the epoch-2 master.
  const members = [member("n2", 102, { lsn: 60, lastEpoch: 1 })];
  assert.deepEqual(
    decide(input({ self: self({ lsn: 11, lastEpoch: 2 }), members }, 600)),
    { kind: "campaign" },
  );
});

Deno.test("election: a replica in full sync or with a diverged log never stands nor blocks", () => {
  assert.equal(decide(input({ self: self({ fullSync: true }) }, 600)).kind, "wait");
  assert.equal(decide(input({ self: self({ diverged: true }) }, 600)).kind, "wait");
  assert.equal(decide(input({ self: self({ filtered: true }) }, 600)).kind, "wait");
  const selective = [member("n2", 102, { lsn: 99, filtered: true })];
  assert.deepEqual(decide(input({ members: selective }, 600)), { kind: "campaign" });
  const members = [member("n2", 102, { lsn: 99, fullSync: true })];
  assert.deepEqual(decide(input({ members }, 600)), { kind: "campaign" });
});

Deno.test("election: of equals the smallest name stands first, any after twice the settle", () => {
  const members = [member("n1", 101), member("n2", 102)];
  const second = self({ name: "n2" });
  assert.equal(decide(input({ self: second, members }, 600)).kind, "wait");
  assert.deepEqual(decide(input({ self: second, members }, 1000)), { kind: "campaign" });
  assert.deepEqual(decide(input({ members }, 0)), { kind: "campaign" });
});

Deno.test("election: sync mode needs R - k + 1 fresh eligible members", () => {
  // Four nodes: the dead master and three replicas; SYNC_REPLICAS=1 → all 3 must report.
  const nodes = ["n1", "n2", "n3", "n4"];
  const two = [member("n1", 101), member("n2", 102, { lsn: 9 }), member("n3", 50, { lsn: 9 })];
  const waiting = decide(input({ members: two, nodes, syncReplicas: 1 }, 5000));
  assert.equal(waiting.kind, "wait");
  assert.match((waiting as { reason: string }).reason, /2 of the 3 members needed/);
  // SYNC_REPLICAS=2: two reporting replicas suffice.
  assert.deepEqual(decide(input({ members: two, nodes, syncReplicas: 2 }, 5000)), {
    kind: "campaign",
  });
  // A fresh member in full sync does not count.
  const syncing = [member("n1", 101), member("n2", 102, { fullSync: true })];
  assert.equal(
    decide(input({ members: syncing, nodes: ["n1", "n2", "n4"], syncReplicas: 1 }, 5000)).kind,
    "wait",
  );
});

Deno.test("election: everyone follows the leader key; a master without it steps down", () => {
  const leader = { name: "n2", address: "127.0.0.1:1002", epoch: 3, lease: "22" };
  assert.deepEqual(decide(input({ leader })), {
    kind: "follow",
    address: "127.0.0.1:1002",
    epoch: 3,
  });
  const following = self({ following: "127.0.0.1:1002", epoch: 3 });
  assert.deepEqual(decide(input({ leader, self: following })), { kind: "steady" });
  assert.deepEqual(decide(input({ leader, self: self({ role: "master", epoch: 2 }) })), {
    kind: "follow",
    address: "127.0.0.1:1002",
    epoch: 3,
  });
  assert.deepEqual(decide(input({ self: self({ role: "master" }) })), { kind: "step_down" });
  // Nothing while a role change runs.
  assert.equal(decide(input({ leader, self: self({ changing: true }) })).kind, "wait");
});

Deno.test("election: the leader key under this node's name is promoted, or revoked if stale", () => {
  const mine = { name: "n1", address: "127.0.0.1:1001", epoch: 4, lease: "11" };
  assert.deepEqual(decide(input({ leader: mine })), { kind: "promote", epoch: 4 });
  assert.deepEqual(decide(input({ leader: mine, self: self({ role: "master" }) })), {
    kind: "steady",
  });
  assert.deepEqual(decide(input({ leader: { ...mine, lease: "7" } })), {
    kind: "revoke",
    lease: "7",
  });
});

Deno.test("fences: a master acknowledges nothing past its trusted lease or without the key", () => {
  const facts = { leaderIsSelf: true, trustedUntilMs: 5000, lastRenewalMs: 1000, nowMs: 4999 };
  assert.equal(ackFence(facts), undefined);
  assert.equal(writeFence(facts), undefined);
  const late = ackFence({ ...facts, nowMs: 5000 });
  assert.match(late ?? "", /lease in etcd cannot be trusted \(last renewed 4\.0 s ago/);
  assert.match(ackFence({ ...facts, leaderIsSelf: false }) ?? "", /does not hold the leader key/);
  // A suspended machine: the monotonic clock stood still, the wall clock did not.
  const resumed = { ...facts, trustedUntilWallMs: 50_000, wallNowMs: 50_000 };
  assert.match(ackFence(resumed) ?? "", /cannot be trusted/);
  assert.equal(ackFence({ ...resumed, wallNowMs: 49_999 }), undefined);
  // New writes stop a little before acknowledgements do: a write taken then is refused cleanly.
  const near = { ...facts, nowMs: 4950, writeHeadroomMs: 100 };
  assert.match(writeFence(near) ?? "", /cannot be trusted/);
  assert.equal(ackFence(near), undefined);
  // A pause refuses new writes but still acknowledges those taken.
  const paused = { ...facts, paused: "a switchover to n2 is in progress" };
  assert.equal(ackFence(paused), undefined);
  assert.equal(writeFence(paused), "a switchover to n2 is in progress");
});
