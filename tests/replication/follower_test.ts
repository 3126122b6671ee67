/**
 * Deterministic tests of the replica's state machine (`Follower`): no sockets, no store, time
 * passed in. Which stream owns the link, epoch fencing of older streams, the full-sync phase and
 * the link status.
 */
import assert from "node:assert/strict";
import { Follower, type HelloFacts } from "../../src/replication/follower.ts";

function hello(epoch: number, masterLsn = 0): HelloFacts {
  return { epoch, masterLsn, pingIntervalMs: 1000, timeoutMs: 500, masterAddress: "m:1" };
}

function clock(): { now: number; nowMs: () => number } {
  const c = { now: 0, nowMs: () => c.now };
  return c;
}

Deno.test("follower: frames before HELLO, and on a superseded stream, are refused", () => {
  const follower = new Follower(() => 0);
  assert.deepEqual(follower.checkFrame(1, "LOG", 0), {
    kind: "refused",
    message: "REPLICATE LOG before REPLICATE HELLO",
  });
  assert.equal(follower.onHello(1, "a:1", hello(0), 0).kind, "accepted");
  assert.deepEqual(follower.checkFrame(1, "LOG", 0), { kind: "ok" });
  // A second master connection (same epoch) takes the link over: the first one is superseded.
  const second = follower.onHello(2, "a:2", hello(0), 0);
  assert.deepEqual(second, { kind: "accepted", previousPeer: "a:1" });
  assert.equal(follower.streamId, 2);
  const superseded = follower.checkFrame(1, "PING", 0);
  assert.equal(superseded.kind, "refused");
  assert.match((superseded as { message: string }).message, /superseded by a newer/);
});

Deno.test("follower: a HELLO or a frame from an epoch older than the newest known is stale", () => {
  const follower = new Follower(() => 0);
  assert.deepEqual(follower.onHello(1, "old:1", hello(3), 5), { kind: "stale" });
  assert.equal(follower.streamId, 0, "a refused HELLO changes nothing");
  follower.onHello(1, "old:1", hello(5), 5);
  // A newer epoch became known (a newer master's HELLO elsewhere, or REPLICAOF ... EPOCH 6).
  assert.deepEqual(follower.checkFrame(1, "LOG", 6), {
    kind: "stale",
    streamEpoch: 5,
    knownEpoch: 6,
  });
  assert.deepEqual(follower.staleness(1, 6), { kind: "stale", streamEpoch: 5, knownEpoch: 6 });
  assert.equal(follower.staleness(7, 6), undefined, "a connection that never said HELLO");
  // The epoch outlives the stream role: a promoted node still fences it (stopFollowing).
  follower.stopFollowing();
  assert.equal(follower.streamEpoch(1), 5);
  follower.onClosed(1);
  assert.equal(follower.streamEpoch(1), undefined, "forgotten with its connection");
});

Deno.test("follower: the full-sync phase belongs to the stream that began it", () => {
  const follower = new Follower(() => 0);
  follower.onHello(1, "m:1", hello(0), 0);
  assert.equal(follower.beginSync(1, 100, 10), undefined);
  assert.equal(
    follower.logRefusal(),
    "REPLICATE LOG during a full sync (expected SNAPSHOT END)",
  );
  const sync = follower.syncOf(1, "CHUNK");
  assert.ok(typeof sync !== "string");
  assert.equal(follower.syncOf(2, "CHUNK"), "REPLICATE SNAPSHOT CHUNK without SNAPSHOT BEGIN");
  assert.equal(follower.endRefusal(sync, 99), "SNAPSHOT END at LSN 99 does not match BEGIN's 100");
  assert.equal(follower.endRefusal(sync, 100), undefined);
  follower.syncDone(sync);
  assert.equal(follower.sync, undefined);
  assert.equal(follower.logRefusal(), undefined);
});

Deno.test("follower: a new HELLO, a new BEGIN or the stream's close abandon an unfinished sync", () => {
  const follower = new Follower(() => 0);
  follower.onHello(1, "m:1", hello(0), 0);
  follower.beginSync(1, 10, 1);
  const replaced = follower.beginSync(1, 20, 1);
  assert.equal(replaced?.lsn, 10, "BEGIN again: the first sync is returned to discard");
  const accepted = follower.onHello(2, "m:2", hello(0), 0);
  assert.equal(accepted.kind === "accepted" && accepted.abandoned?.lsn, 20);
  follower.beginSync(2, 30, 1);
  assert.deepEqual(follower.onClosed(1), { streamEnded: false }, "not the stream");
  const closed = follower.onClosed(2);
  assert.equal(closed.streamEnded, true);
  assert.equal(closed.abandoned?.lsn, 30);
  assert.equal(follower.streamId, 0);
});

Deno.test("follower: the link is up while the master was heard within ping + timeout", () => {
  const c = clock();
  const follower = new Follower(c.nowMs);
  assert.equal(follower.link().status, "down");
  assert.equal(follower.link().lastIoMs, -1);
  c.now = 100;
  follower.onHello(1, "peer:9", hello(2, 40), 2, 30);
  c.now = 1500;
  assert.deepEqual(follower.link(30), {
    status: "up",
    masterPeer: "peer:9",
    masterAdvertised: "m:1",
    lastIoMs: 1400,
    masterKnownLsn: 40,
    masterLagRecords: 10,
    masterLagMs: 1400,
    masterEpoch: 2,
    // The stream comes from the master itself: end to end is this hop.
    depth: 1,
    originAddress: "m:1",
    originKnownLsn: 40,
    originLagRecords: 10,
    originLagMs: 1400,
    // Up: its data is as old as its lag.
    stalenessMs: 1400,
  });
  c.now = 1601;
  assert.equal(follower.link().status, "down", "1,501 ms of silence > 1,000 + 500");
  follower.checkFrame(1, "PING", 2);
  assert.equal(follower.link().status, "up", "a frame is contact");
  follower.onClosed(1);
  assert.equal(follower.link().status, "down");
});

Deno.test("follower: the lag behind the master, from HELLO, PINGs and applied frames", () => {
  const c = clock();
  const follower = new Follower(c.nowMs);
  follower.onHello(1, "m:1", hello(0, 5), 0, 5);
  assert.equal(follower.link(5).masterLagRecords, 0, "caught up at HELLO");
  c.now = 100;
  follower.learnMasterLsn(9, 5); // an idle link's PING: the master has LSN 9
  c.now = 160;
  let link = follower.link(5);
  assert.deepEqual([link.masterKnownLsn, link.masterLagRecords, link.masterLagMs], [9, 4, 60]);
  follower.onApplied(8);
  assert.equal(follower.link(8).masterLagMs, 60, "still behind: the lag runs from the first");
  follower.onApplied(9);
  link = follower.link(9);
  assert.deepEqual([link.masterLagRecords, link.masterLagMs], [0, 0]);
  follower.onHello(2, "m:2", hello(0, 3), 0, 9);
  assert.equal(follower.link(9).masterKnownLsn, 9, "a new master: the replica's own LSN at least");
});

Deno.test("follower: in a chain, the upstream's reports give the head, the depth and end-to-end lag", () => {
  const c = clock();
  const follower = new Follower(c.nowMs);
  assert.equal(follower.link().depth, 0, "no stream yet");
  follower.onHello(1, "r1:40000", hello(1, 50), 1, 50);
  assert.equal(follower.link(50).depth, 1, "until a report, the stream is the master's");
  // r1 reports: the master is at 80, r1 lags it by 300 ms, r1 is a replica of the master.
  follower.onChain(60, { originLsn: 80, originLagMs: 300, depth: 1, originAddress: "m:1" }, 50);
  c.now = 200;
  let link = follower.link(50);
  assert.equal(link.depth, 2);
  assert.equal(link.originAddress, "m:1");
  assert.equal(link.masterKnownLsn, 60, "this hop: r1's LSN");
  assert.deepEqual([link.masterLagRecords, link.originLagRecords], [10, 30]);
  assert.equal(link.originLagMs, 300 + 200, "r1's own lag plus this hop's");
  follower.onApplied(60);
  link = follower.link(60);
  assert.deepEqual([link.masterLagRecords, link.masterLagMs], [0, 0]);
  assert.deepEqual([link.originLagRecords, link.originLagMs], [20, 300]);
  // A new HELLO (re-pointed to the master) starts over at depth 1.
  follower.onHello(2, "m:1", hello(1, 90), 1, 60);
  link = follower.link(60);
  assert.equal(link.depth, 1);
  assert.equal(link.originKnownLsn, 90);
});

Deno.test("follower: staleness is the lag while up, the time since the link was last up while down", () => {
  const c = clock();
  const follower = new Follower(c.nowMs);
  assert.equal(follower.link().stalenessMs, Infinity, "no master heard from yet");
  follower.onHello(1, "m:1", hello(0, 5), 0, 5);
  c.now = 400;
  assert.equal(follower.link(5).stalenessMs, 0, "up and caught up");
  // The master was heard at 400 and its stream closed at 900 (within ping + timeout: it was up
  // until the close): stale since the close, not since the last frame.
  follower.checkFrame(1, "PING", 0);
  c.now = 900;
  follower.onClosed(1);
  c.now = 2900;
  assert.equal(follower.link(5).stalenessMs, 2000);
  // A new stream: fresh again.
  follower.onHello(2, "m:1", hello(0, 5), 0, 5);
  assert.equal(follower.link(5).stalenessMs, 0);
  // A master that falls silent (SIGSTOP): the link is down after ping + timeout, and the data
  // may be as old as the last contact.
  c.now = 2900 + 1501;
  assert.equal(follower.link(5).status, "down");
  assert.equal(follower.link(5).stalenessMs, 1501);
  // A close long after the last contact counts from the last contact.
  c.now = 10_000;
  follower.onClosed(2);
  assert.equal(follower.link(5).stalenessMs, 10_000 - 2900);
});
