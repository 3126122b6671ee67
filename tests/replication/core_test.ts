/**
 * Deterministic tests of the replication decision core: no sockets, no timers, time passed in.
 */
import assert from "node:assert/strict";
import { findCommonLsn } from "../../src/replication/divergence.ts";
import { LagClock } from "../../src/replication/lag_clock.ts";
import { SyncProgress } from "../../src/replication/sync_progress.ts";
import { type DurableBatch, RecordQueue } from "../../src/replication/record_queue.ts";
import { ReplicaManager } from "../../src/replication/replica_manager.ts";
import { ReplicaNode, type ReplicaPolicy } from "../../src/replication/replica_node.ts";
import {
  DeposedError,
  SyncAckTracker,
  SyncReplicationError,
} from "../../src/replication/sync_tracker.ts";

const NO_CRC = { replicaCrc: 0, masterCrcAtReplicaLsn: 0 };

const POLICY: ReplicaPolicy = {
  maxFailures: 3,
  maxRetries: 3,
  retryBackoffMs: 100,
  healthCheckIntervalMs: 30_000,
  timeoutMs: 5_000,
  queueSizeRecords: 10,
  batchBytes: 1000,
};

function batch(firstLsn: number, lastLsn: number, bytesPerRecord = 10): DurableBatch {
  return { records: new Uint8Array((lastLsn - firstLsn + 1) * bytesPerRecord), firstLsn, lastLsn };
}

function connectedNode(policy: Partial<ReplicaPolicy> = {}, replicaLsn = 0, durableLsn = 0) {
  const node = new ReplicaNode("127.0.0.1", 5556, { ...POLICY, ...policy });
  node.setDurableLsn(durableLsn);
  const decision = node.onHandshake({
    replicaLsn,
    replicaEpoch: 1,
    masterEpochAtReplicaLsn: 1,
    replicaCrc: 0,
    masterCrcAtReplicaLsn: 0,
  }, 0);
  return { node, decision };
}

Deno.test("record queue: bounded by records, overflow discards the buffer and says how much", () => {
  const queue = new RecordQueue(5);
  assert.deepEqual(queue.push(batch(1, 3)), { kind: "queued" });
  assert.deepEqual(queue.push(batch(4, 5)), { kind: "queued" });
  assert.equal(queue.sizeRecords, 5);
  assert.deepEqual(queue.push(batch(6, 6)), { kind: "overflow", discardedRecords: 5 });
  assert.equal(queue.sizeRecords, 0);
  assert.equal(queue.firstLsn, undefined);
  assert.deepEqual(queue.push(batch(7, 8)), { kind: "queued" });
  assert.equal(queue.firstLsn, 7);
  assert.throws(() => queue.push(batch(10, 10)), /does not follow 8/);
});

Deno.test("record queue: release acknowledged batches, list batches after an LSN up to a size", () => {
  const queue = new RecordQueue(100);
  for (let lsn = 1; lsn <= 20; lsn += 2) queue.push(batch(lsn, lsn + 1, 100));
  assert.deepEqual(queue.batchesAfter(4, 450).map((b) => b.firstLsn), [5, 7]);
  assert.deepEqual(queue.batchesAfter(3, 450).map((b) => b.firstLsn), [3, 5]);
  assert.deepEqual(queue.batchesAfter(0, 1).map((b) => b.firstLsn), [1], "first always included");
  queue.releaseThrough(5);
  assert.equal(queue.firstLsn, 5, "a batch partly acknowledged stays");
  queue.releaseThrough(6);
  assert.equal(queue.firstLsn, 7);
  assert.equal(queue.sizeRecords, 14);
  assert.deepEqual(queue.batchesAfter(20, 1000), []);
});

Deno.test("lag clock: lag of the first unacknowledged record, thinned when full", () => {
  const clock = new LagClock(4);
  clock.record(10, 1000);
  clock.record(20, 1000.5); // same millisecond: merged
  assert.equal(clock.size, 1);
  clock.record(30, 1010);
  clock.record(40, 1020);
  assert.equal(clock.lagMs(30, 1050), 30);
  assert.equal(clock.lagMs(5, 1050), 50);
  assert.equal(clock.lagMs(40, 1050), 0, "nothing after the last durable LSN");
  clock.record(50, 1030);
  clock.record(60, 1040); // full: thinned to every second sample
  assert.ok(clock.size <= 4);
  assert.equal(clock.lagMs(55, 1100), 60);
  assert.ok(clock.lagMs(5, 1100) <= 100, "thinning never overstates lag");
  clock.forgetThrough(50);
  assert.equal(clock.lagMs(0, 1100), 60);
});

Deno.test("replica node: streams from memory when current, catches up from the log when behind", () => {
  const { node, decision } = connectedNode({}, 0, 0);
  assert.deepEqual(decision, { kind: "stream", fromLsn: 0 });
  assert.equal(node.state, "streaming");
  node.onDurable(batch(1, 2));
  const next = node.nextSend();
  assert.equal(next.kind, "queue");
  node.onSent(1, 2);
  assert.deepEqual(node.nextSend(), { kind: "wait" }, "nothing more to send");
  assert.equal(node.onReply(2, 2), 2);
  assert.equal(node.ackedLsn, 2);
  assert.equal(node.queue.sizeRecords, 0, "acknowledged records leave memory");
  assert.equal(node.successfulRecords, 2);

  const behind = connectedNode({}, 5, 50).node;
  assert.equal(behind.state, "catching_up");
  assert.deepEqual(behind.nextSend(), { kind: "log", afterLsn: 5, uptoLsn: 50 });
});

Deno.test("replica node: a full queue switches to catch-up once, and streaming resumes after", () => {
  const { node } = connectedNode({ queueSizeRecords: 10 });
  assert.equal(node.onDurable(batch(1, 6)), undefined);
  assert.equal(node.onDurable(batch(7, 12)), 12, "overflow reports the records it held");
  assert.equal(node.onDurable(batch(13, 20)), undefined);
  assert.equal(node.onDurable(batch(21, 28)), undefined, "reported once per episode");
  assert.equal(node.onDurable(batch(29, 33)), undefined);
  assert.equal(node.onDurable(batch(34, 38)), undefined);
  // The buffer holds 29..38 now; 1..28 come from the log.
  assert.deepEqual(node.nextSend(), { kind: "log", afterLsn: 0, uptoLsn: 28 });
  assert.equal(node.state, "catching_up");
  node.onSent(1, 10);
  node.onReply(2, 10);
  node.onSent(3, 20);
  node.onReply(3, 20);
  node.onSent(3, 28);
  const next = node.nextSend();
  assert.equal(next.kind, "queue", "once the log reached the buffer, send from memory");
  assert.equal(node.state, "streaming");
  node.onReply(4, 28);
  node.onSent(5, 38);
  node.onReply(6, 38);
  assert.equal(node.lagRecords, 0);
  assert.equal(node.onDurable(batch(39, 45)), undefined);
  assert.equal(node.onDurable(batch(46, 50)), 12, "a new episode is reported again");
});

Deno.test("replica node: the unacknowledged window is bounded by the queue size", () => {
  const { node } = connectedNode({ queueSizeRecords: 10 }, 0, 0);
  node.setDurableLsn(0);
  node.onDurable(batch(1, 5));
  node.onDurable(batch(6, 10));
  const first = node.nextSend();
  assert.equal(first.kind, "queue");
  node.onSent(0, 10);
  node.durableLsn = 100; // as if 90 more records were durable and went to the log
  assert.deepEqual(node.nextSend(), { kind: "wait" }, "10 unacknowledged records: window full");
  node.onReply(1, 4);
  assert.deepEqual(node.nextSend(), { kind: "log", afterLsn: 10, uptoLsn: 100 });
});

Deno.test("replica node: handshake decides full sync for new, diverged and compacted replicas", () => {
  const decide = (
    replicaLsn: number,
    replicaEpoch: number,
    masterEpoch: number | undefined,
    replicaCrc = 0,
    masterCrc = 0,
  ) => {
    const node = new ReplicaNode("h", 1, POLICY);
    node.setDurableLsn(100);
    return node.onHandshake({
      replicaLsn,
      replicaEpoch,
      masterEpochAtReplicaLsn: masterEpoch,
      replicaCrc,
      masterCrcAtReplicaLsn: masterCrc,
    }, 0);
  };
  assert.deepEqual(decide(40, 1, 1, 77, 77), { kind: "stream", fromLsn: 40 }, "same record");
  assert.deepEqual(decide(40, 1, 1, 0, 77), { kind: "stream", fromLsn: 40 }, "CRC unknown");
  assert.match(
    kindReason(decide(40, 1, 1, 77, 78)),
    /record at LSN 40 differs from the master's \(CRC 77 vs 78\): its log diverged/,
  );
  assert.deepEqual(decide(100, 1, 1), { kind: "stream", fromLsn: 100 });
  assert.deepEqual(decide(40, 2, 2), { kind: "stream", fromLsn: 40 });
  assert.deepEqual(decide(0, 0, 0), { kind: "stream", fromLsn: 0 }, "empty: from a complete log");
  assert.match(kindReason(decide(0, 0, undefined)), /full_sync: replica is empty and the master/);
  assert.match(kindReason(decide(101, 1, undefined)), /beyond the master's last LSN 100/);
  assert.match(kindReason(decide(40, 1, undefined)), /no longer holds the records after LSN 40/);
  assert.match(kindReason(decide(40, 1, 2)), /epoch 1, the master's has epoch 2/);
  const empty = new ReplicaNode("h", 1, POLICY);
  assert.deepEqual(
    empty.onHandshake({ replicaLsn: 0, replicaEpoch: 0, masterEpochAtReplicaLsn: 0, ...NO_CRC }, 0),
    { kind: "stream", fromLsn: 0 },
    "an empty master has nothing to sync",
  );
});

Deno.test("replica node: the handshake says when the replica's log diverged (not for compaction)", () => {
  const diverged = (replicaLsn: number, replicaEpoch: number, masterEpoch?: number) => {
    const node = new ReplicaNode("h", 1, POLICY);
    node.setDurableLsn(100);
    const facts = { replicaLsn, replicaEpoch, masterEpochAtReplicaLsn: masterEpoch, ...NO_CRC };
    const decision = node.onHandshake(facts, 0);
    return decision.kind === "full_sync" ? decision.diverged : "stream";
  };
  assert.equal(diverged(101, 1, undefined), true, "past the master's last LSN");
  assert.equal(diverged(40, 1, 2), true, "another epoch at its last LSN");
  assert.equal(diverged(40, 1, undefined), false, "compacted: a full sync, nothing diverged");
  assert.equal(diverged(40, 1, 1), "stream");
});

Deno.test("replica node: a log gap while catching up turns into a full sync once replies are in", () => {
  const { node } = connectedNode({}, 10, 50);
  assert.deepEqual(node.nextSend(), { kind: "log", afterLsn: 10, uptoLsn: 50 });
  node.onSent(1, 20);
  const decision = node.onLogGap("the log starts after LSN 30");
  assert.deepEqual(decision, {
    kind: "full_sync",
    reason: "the log starts after LSN 30",
    diverged: false,
  });
  assert.equal(node.state, "full_sync");
  assert.equal(node.fullSyncs, 1);
  assert.equal(node.sentLsn, 10, "what was sent but not acknowledged is sent again");
});

Deno.test("replica node: snapshot chunks in flight are bounded by the queue size in pairs", () => {
  const { node } = connectedNode({ queueSizeRecords: 10 });
  assert.equal(node.snapshotWindowOpen(50), true, "a chunk larger than the window goes alone");
  node.onSent(0, undefined, 50);
  assert.equal(node.snapshotWindowOpen(1), false);
  node.onReply(1, undefined, 50);
  node.onSent(2, undefined, 6);
  assert.equal(node.snapshotWindowOpen(4), true);
  assert.equal(node.snapshotWindowOpen(5), false);
  node.markFailure(3, "reset");
  assert.equal(node.snapshotWindowOpen(10), true, "a failure forgets what was in flight");
});

Deno.test("common LSN: the last master record no newer than the replica's epoch", async () => {
  // Master: LSN 1..4 epoch 0, 5..9 epoch 2 (a promotion at 5); LSN 0 is epoch 0.
  const epochs = [0, 0, 0, 0, 0, 2, 2, 2, 2, 2];
  let probes = 0;
  const epochAt = (lsn: number) => {
    probes++;
    return epochs[lsn];
  };
  const query = (replicaLsn: number, replicaEpoch: number, oldestCompleteLsn = 0) => ({
    replicaLsn,
    replicaEpoch,
    oldestCompleteLsn,
    durableLsn: 9,
  });
  assert.equal(await findCommonLsn(query(7, 0), epochAt), 4, "old master past the promotion");
  assert.ok(probes <= 5, `${probes} probes for 8 LSNs`);
  assert.equal(await findCommonLsn(query(12, 1), epochAt), 4, "an epoch between the two");
  assert.equal(await findCommonLsn(query(12, 2), epochAt), 9, "beyond the durable end");
  assert.equal(await findCommonLsn(query(3, 0), epochAt), 3);
  assert.equal(await findCommonLsn(query(7, 0, 6), epochAt), undefined, "compacted past it");
  assert.equal(await findCommonLsn(query(7, 0, 2), epochAt), 4);
  const gone = (lsn: number) => (lsn > 2 ? undefined : epochs[lsn]);
  assert.equal(await findCommonLsn(query(7, 0), gone), undefined, "compacted while searching");
  // Bounded: a long log takes log2 probes.
  probes = 0;
  const long = (lsn: number) => (probes++, lsn <= 600_000 ? 3 : 4);
  const found = await findCommonLsn(
    { replicaLsn: 1_000_000, replicaEpoch: 3, oldestCompleteLsn: 0, durableLsn: 2_000_000 },
    long,
  );
  assert.equal(found, 600_000);
  assert.ok(probes <= 22, `${probes} probes`);
});

Deno.test("full sync progress: a report every 10% and at least every 5 s", () => {
  const progress = new SyncProgress(0, 1000);
  assert.equal(progress.sent(50, 500, 1), false);
  assert.equal(progress.sent(60, 600, 2), true, "11%");
  assert.equal(progress.sent(10, 100, 3), false);
  assert.equal(progress.sent(1, 10, 5003), true, "5 s since the last report");
  assert.deepEqual(progress.figures(), {
    records: 121,
    totalRecords: 1000,
    bytes: 1210,
    percent: 12,
  });
  assert.deepEqual(progress.done(10_000), {
    records: 121,
    bytes: 1210,
    seconds: 10,
    mbPerSecond: 0,
  });
});

function kindReason(d: { kind: string; reason?: string }): string {
  return `${d.kind}: ${d.reason ?? ""}`;
}

Deno.test("replica node: full sync ends at the snapshot LSN and catches up from there", () => {
  const node = new ReplicaNode("h", 1, POLICY);
  node.setDurableLsn(100);
  node.onHandshake({
    replicaLsn: 0,
    replicaEpoch: 0,
    masterEpochAtReplicaLsn: undefined,
    ...NO_CRC,
  }, 0);
  assert.equal(node.state, "full_sync");
  assert.equal(node.fullSyncs, 1);
  node.onDurable(batch(101, 105));
  node.onFullSyncDone(103, 10);
  assert.equal(node.ackedLsn, 103);
  assert.equal(node.state, "catching_up");
  const next = node.nextSend();
  assert.equal(next.kind, "queue");
  node.onSent(11, 105);
  node.onReply(12, 105);
  assert.equal(node.state, "streaming");
});

Deno.test("health: unhealthy after maxFailures consecutive failures, healthy on first success", () => {
  const node = new ReplicaNode("h", 1, POLICY);
  assert.equal(node.markFailure(1, "refused").becameUnhealthy, false);
  assert.equal(node.markFailure(2, "refused").becameUnhealthy, false);
  const third = node.markFailure(3, "timeout");
  assert.equal(third.becameUnhealthy, true);
  assert.equal(node.healthy, false);
  assert.equal(node.consecutiveFailures, 3);
  assert.equal(node.lastFailureMs, 3);
  assert.equal(node.lastError, "timeout");
  assert.equal(node.markFailure(4, "timeout").becameUnhealthy, false, "reported once");
  assert.equal(node.markSuccess(5), true);
  assert.equal(node.healthy, true);
  assert.equal(node.consecutiveFailures, 0);
  assert.equal(node.lastSuccessMs, 5);
  assert.equal(node.markSuccess(6), false);
});

Deno.test("retry: backoff doubles for maxRetries attempts, then waits the health-check interval", () => {
  const node = new ReplicaNode("h", 1, { ...POLICY, maxRetries: 3, retryBackoffMs: 100 });
  const delays = [1, 2, 3, 4, 5].map((t) => node.markFailure(t, "x").retryDelayMs);
  assert.deepEqual(delays, [100, 200, 400, 30_000, 30_000]);
  node.onHandshake({ replicaLsn: 0, replicaEpoch: 0, masterEpochAtReplicaLsn: 0, ...NO_CRC }, 6);
  assert.equal(node.healthy, true, "contact marks it healthy");
  assert.equal(node.markFailure(7, "x").retryDelayMs, 30_000, "but a handshake keeps the backoff");
  node.markSuccess(8);
  assert.equal(node.markFailure(9, "x").retryDelayMs, 100, "acknowledged records reset it");
  const noRetries = new ReplicaNode("h", 1, { ...POLICY, maxRetries: 0 });
  assert.equal(noRetries.markFailure(1, "x").retryDelayMs, 30_000);
  const capped = new ReplicaNode("h", 1, { ...POLICY, retryBackoffMs: 50_000 });
  assert.equal(capped.markFailure(1, "x").retryDelayMs, 30_000, "never beyond the interval");
});

Deno.test("retry: past maxRetries a down replica is probed every maxRetryBackoffMs, not the interval", () => {
  const policy = { ...POLICY, maxRetries: 3, retryBackoffMs: 100, maxRetryBackoffMs: 1000 };
  const node = new ReplicaNode("h", 1, policy);
  const delays = [1, 2, 3, 4, 5, 6].map((t) => node.markFailure(t, "x").retryDelayMs);
  assert.deepEqual(delays, [100, 200, 400, 1000, 1000, 1000]);
  const short = new ReplicaNode("h", 1, { ...policy, retryBackoffMs: 800 });
  const capped = [1, 2, 3].map((t) => short.markFailure(t, "x").retryDelayMs);
  assert.deepEqual(capped, [800, 1000, 1000], "the doubling stops at the longest backoff");
  const interval = new ReplicaNode("h", 1, { ...policy, healthCheckIntervalMs: 300 });
  const paced = [1, 2, 3, 4].map((t) => interval.markFailure(t, "x").retryDelayMs);
  assert.deepEqual(paced, [100, 200, 300, 300], "never beyond the health-check interval");
});

Deno.test("timeouts: an overdue reply fails the attempt; an idle link is pinged", () => {
  const { node } = connectedNode({ timeoutMs: 500, healthCheckIntervalMs: 2000 });
  assert.equal(node.replyOverdue(10_000), false, "nothing awaited");
  node.onSent(1000);
  assert.equal(node.replyDeadlineMs(), 1500);
  assert.equal(node.replyOverdue(1499), false);
  assert.equal(node.replyOverdue(1500), true);
  node.onReply(1400);
  assert.equal(node.replyOverdue(5000), false);
  assert.equal(node.pingDue(3399), false);
  assert.equal(node.pingDue(3400), true);
  const outcome = node.markFailure(3500, "reply timeout");
  assert.equal(node.state, "down");
  assert.equal(node.pendingReplies, 0);
  assert.equal(outcome.retryDelayMs, 100);
  assert.equal(node.pingDue(99_999), false, "a down link is not pinged");
});

Deno.test("a failure rewinds the sent position to the acknowledged one", () => {
  const { node } = connectedNode();
  node.onDurable(batch(1, 4));
  node.nextSend();
  node.onSent(0, 4);
  node.onReply(1, 2);
  node.markFailure(2, "reset");
  assert.equal(node.sentLsn, 2);
  assert.equal(node.queue.firstLsn, 1, "unacknowledged records stay buffered for the resend");
});

Deno.test("manager: healthy replicas, status with lag in records and ms", () => {
  let nowMs = 0;
  const clock = new LagClock(100);
  const manager = new ReplicaManager(POLICY, () => nowMs, clock);
  const a = manager.addReplica("127.0.0.1", 5556);
  const b = manager.addReplica("127.0.0.1", 5557);
  assert.throws(() => manager.addReplica("127.0.0.1", 5556), /listed twice/);
  for (let t = 0; t < 3; t++) manager.markFailure(b, t, "refused");
  assert.deepEqual(manager.getHealthyReplicas(), [a]);
  a.onHandshake({ replicaLsn: 0, replicaEpoch: 0, masterEpochAtReplicaLsn: 0, ...NO_CRC }, 0);
  for (const node of [a, b]) node.onDurable(batch(1, 5));
  clock.record(5, 1000);
  a.nextSend();
  a.onSent(1000, 5);
  a.onReply(1001, 3);
  nowMs = 1250;
  const status = manager.getStatus();
  assert.equal(status.totalReplicas, 2);
  assert.equal(status.healthyReplicas, 1);
  assert.equal(status.replicas[0].ackedLsn, 3);
  assert.equal(status.replicas[0].lagRecords, 2);
  assert.equal(status.replicas[0].lagMs, 250);
  assert.equal(status.replicas[0].state, "streaming");
  assert.equal(status.replicas[1].state, "down");
  assert.equal(status.replicas[1].healthy, false);
  assert.equal(status.replicas[1].lastError, "refused");
  assert.equal(typeof status.replicas[1].lastFailure, "string");
  assert.equal(manager.minAckedLsn(), 0);
});

Deno.test("sync tracker: every healthy replica by default; unhealthy ones are skipped", () => {
  const tracker = new SyncAckTracker<string>(0, 5000);
  const replicas = [{ ackedLsn: 0, healthy: true }, { ackedLsn: 0, healthy: true }];
  tracker.add(1, 0, "w1");
  tracker.add(2, 0, "w2");
  assert.deepEqual(tracker.settle(replicas, 1).acknowledged, []);
  replicas[0].ackedLsn = 2;
  assert.deepEqual(tracker.settle(replicas, 1).acknowledged, [], "one of two healthy");
  replicas[1].ackedLsn = 1;
  assert.deepEqual(tracker.settle(replicas, 1).acknowledged, ["w1"]);
  replicas[1].healthy = false;
  assert.deepEqual(tracker.settle(replicas, 1).acknowledged, ["w2"], "unhealthy: skipped");
  assert.equal(tracker.size, 0);
});

Deno.test("sync tracker: --sync-replicas N counts acknowledgements whatever the health", () => {
  const tracker = new SyncAckTracker<number>(1, 5000);
  const replicas = [{ ackedLsn: 0, healthy: false }, { ackedLsn: 0, healthy: true }];
  tracker.add(7, 0, 7);
  assert.deepEqual(tracker.settle(replicas, 0).acknowledged, []);
  replicas[0].ackedLsn = 9;
  assert.deepEqual(tracker.settle(replicas, 0).acknowledged, [7]);
});

Deno.test("sync tracker: a write not backed in time fails with a message that says so", () => {
  const tracker = new SyncAckTracker<string>(2, 5000);
  const replicas = [{ ackedLsn: 10, healthy: true }, { ackedLsn: 3, healthy: false }];
  tracker.add(5, 100, "late");
  tracker.add(4, 200, "later");
  assert.equal(tracker.nextDeadlineMs(), 5100);
  assert.equal(tracker.settle(replicas, 5099).expired.length, 0);
  const { acknowledged, expired } = tracker.settle(replicas, 5100);
  assert.deepEqual(acknowledged, []);
  assert.equal(expired.length, 1);
  assert.equal(expired[0].token, "late");
  const error = expired[0].error;
  assert.ok(error instanceof SyncReplicationError);
  assert.equal(error.ackedReplicas, 1);
  assert.equal(error.requiredReplicas, 2);
  assert.match(error.message, /applied on the master \(LSN 5\) but acknowledged by only 1 of 2/);
  assert.match(error.message, /REPLICATION_TIMEOUT 5 s/);
  // True on a master that may yet be deposed: it says when the write would be lost.
  assert.match(
    error.message,
    /sent to the replicas when they catch up \(unless a replica without it is promoted first\)/,
  );
  assert.equal(tracker.size, 1);
  const [stopped] = tracker.failAll(replicas);
  assert.equal(stopped.token, "later");
  assert.match(stopped.error.message, /before the master stopped; .* after it restarts/);
  assert.doesNotMatch(stopped.error.message, /REPLICATION_TIMEOUT/);
});

Deno.test("sync tracker: a deposed master's waiting writes say they may be lost", () => {
  const error = new DeposedError(12, "replica r:1 follows a newer master");
  assert.match(error.message, /LSN 12\) but not acknowledged: this node was deposed \(replica r:1/);
  assert.match(error.message, /may be lost/);
  assert.doesNotMatch(error.message, /catch up/);
});

Deno.test("sync tracker: the backed LSN agrees with isBacked, for N replicas and for all healthy", () => {
  const replicas = [
    { ackedLsn: 7, healthy: true },
    { ackedLsn: 3, healthy: false },
    { ackedLsn: 5, healthy: true },
  ];
  for (const required of [0, 1, 2, 3, 4]) {
    const tracker = new SyncAckTracker<number>(required, 1000);
    const backed = tracker.backedLsn(replicas, 9);
    for (let lsn = 1; lsn <= 9; lsn++) {
      assert.equal(lsn <= backed, tracker.isBacked(lsn, replicas), `required ${required}, ${lsn}`);
    }
  }
  assert.equal(new SyncAckTracker<number>(0, 1000).backedLsn([], 9), 9, "no replica: durable");
});

Deno.test("sync tracker: once a write ran out of time, waiters at or below it fail too", () => {
  const tracker = new SyncAckTracker<string>(1, 5000);
  const replicas = [{ ackedLsn: 0, healthy: true }];
  tracker.add(4, 0, "write");
  tracker.add(4, 3000, "read of it");
  tracker.add(6, 3000, "later write");
  assert.deepEqual(tracker.settle(replicas, 5000).expired.map((e) => e.token), ["write"]);
  assert.deepEqual(tracker.expireThrough(4, replicas).map((e) => e.token), ["read of it"]);
  assert.equal(tracker.size, 1);
});

Deno.test("sync tracker: waiters added out of order settle in LSN order", () => {
  const tracker = new SyncAckTracker<number>(0, 1000);
  for (const lsn of [5, 3, 9, 4]) tracker.add(lsn, 0, lsn);
  const replicas = [{ ackedLsn: 5, healthy: true }];
  assert.deepEqual(tracker.settle(replicas, 0).acknowledged, [3, 4, 5]);
  replicas[0].ackedLsn = 9;
  assert.deepEqual(tracker.settle(replicas, 0).acknowledged, [9]);
});

Deno.test("forwarding: a sub-replica ahead is waited for, then checked where it stands", () => {
  const node = new ReplicaNode("127.0.0.1", 5556, { ...POLICY, forwarding: true });
  node.setDurableLsn(10);
  const facts = { replicaLsn: 15, replicaEpoch: 2, replicaCrc: 77, masterCrcAtReplicaLsn: 0 };
  const decision = node.onHandshake({ ...facts, masterEpochAtReplicaLsn: undefined }, 0);
  assert.deepEqual(decision, { kind: "ahead", replicaLsn: 15 });
  assert.equal(node.state, "ahead");
  assert.equal(node.lagRecords, 0, "a sub-replica ahead does not lag");
  assert.deepEqual(node.nextSend(), { kind: "wait" });
  node.onDurable(batch(11, 14));
  assert.deepEqual(node.nextSend(), { kind: "wait" }, "14 < 15: still behind it");
  node.onDurable(batch(15, 16));
  assert.deepEqual(node.nextSend(), { kind: "verify", lsn: 15 });
  // The same record there: it streams on from 15 (16 goes from the buffer).
  const streaming = node.onVerified({ masterEpochAtReplicaLsn: 2, masterCrcAtReplicaLsn: 77 });
  assert.deepEqual(streaming, { kind: "stream", fromLsn: 15 });
  const next = node.nextSend();
  assert.equal(next.kind, "queue");
  assert.equal(next.kind === "queue" ? next.batches[0].lastLsn : 0, 16);

  // Another record at that LSN: its log left this history.
  const other = new ReplicaNode("127.0.0.1", 5557, { ...POLICY, forwarding: true });
  other.setDurableLsn(10);
  other.onHandshake({ ...facts, masterEpochAtReplicaLsn: undefined }, 0);
  other.onDurable(batch(11, 15));
  assert.deepEqual(other.nextSend(), { kind: "verify", lsn: 15 });
  const diverged = other.onVerified({ masterEpochAtReplicaLsn: 3, masterCrcAtReplicaLsn: 5 });
  assert.equal(diverged.kind, "full_sync");
  assert.equal(diverged.kind === "full_sync" && diverged.diverged, true);

  // A master (not forwarding) takes a replica ahead of it for diverged at once.
  const master = new ReplicaNode("127.0.0.1", 5558, POLICY);
  master.setDurableLsn(10);
  const refused = master.onHandshake({ ...facts, masterEpochAtReplicaLsn: undefined }, 0);
  assert.equal(refused.kind, "full_sync");
});

Deno.test("forwarding: a replaced log or a pause drops the link without counting a failure", () => {
  const { node } = connectedNode({ forwarding: true }, 0, 0);
  node.onDurable(batch(1, 5));
  node.onSent(1, 5);
  node.resetLog(3, "this node's data was replaced by a full sync");
  assert.equal(node.state, "down");
  assert.equal(node.durableLsn, 3);
  assert.equal(node.queue.sizeRecords, 0);
  assert.equal(node.pendingReplies, 0);
  assert.equal(node.consecutiveFailures, 0);
  assert.equal(node.healthy, true);
  assert.match(node.lastError, /replaced by a full sync/);
  assert.equal(node.retryDelayMs(), 0, "the next attempt comes at once");
});

Deno.test("forwarding: chain reports fall due every interval on a connected link only", () => {
  const node = new ReplicaNode("127.0.0.1", 5556, { ...POLICY, chainReportIntervalMs: 1000 });
  assert.equal(node.chainReportDue(0), false, "not while down");
  node.onHandshake({ ...NO_CRC, replicaLsn: 0, replicaEpoch: 0, masterEpochAtReplicaLsn: 0 }, 0);
  assert.equal(node.chainReportDue(0), true, "at once after the handshake");
  node.onChainReported(0);
  assert.equal(node.chainReportDue(999), false);
  assert.equal(node.chainReportDueAtMs(), 1000);
  assert.equal(node.chainReportDue(1000), true);
  const master = connectedNode().node;
  assert.equal(master.chainReportDue(1e9), false, "a master reports no chain");
  assert.equal(master.chainReportDueAtMs(), Infinity);
});
