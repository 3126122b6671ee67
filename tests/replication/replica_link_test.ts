/**
 * A master's `ReplicaLink` against a scripted replica over an in-memory connection (a fake
 * `connect`): the link only carries out what its `ReplicaNode` decides (catch-up, streaming,
 * divergence report and full sync, the log-gap fallback, timeouts, refusals, the token proof).
 */
import assert from "node:assert/strict";
import { getLog } from "../../src/log.ts";
import { CHALLENGE_OFF_MESSAGE, challengeProof } from "../../src/protocol/challenge.ts";
import { recordEpochAt, recordLengthAt, recordLsnAt } from "../../src/replication/log_records.ts";
import { unpackBatch } from "../../src/replication/compression.ts";
import { ReplicaLink } from "../../src/replication/replica_link.ts";
import { ReplicaNode, type ReplicaPolicy } from "../../src/replication/replica_node.ts";
import { LogGapError } from "../../src/storage/errors.ts";
import { waitUntil } from "../helpers/cluster.ts";
import { MemoryLog, MemoryReplica, type ReceivedRequest } from "../helpers/memory_replica.ts";

const POLICY: ReplicaPolicy = {
  maxFailures: 2,
  maxRetries: 3,
  retryBackoffMs: 10,
  healthCheckIntervalMs: 60_000,
  timeoutMs: 300,
  queueSizeRecords: 100,
  batchBytes: 256,
};

/** A replica's state as the scripted replica keeps it: what it holds, and the answers. */
class ReplicaModel {
  lastLsn: number;
  lastEpoch: number;
  /** What it answers `REPLICATE COMPRESS` (undefined: an error, as a replica from before it). */
  compress: string | undefined;
  constructor(lastLsn = 0, lastEpoch = 0) {
    this.lastLsn = lastLsn;
    this.lastEpoch = lastEpoch;
  }

  /** Answers as a replica does (no tokens). */
  answer(request: ReceivedRequest): string {
    const [name, sub, step] = request.words;
    if (name === "CHALLENGE") return `-ERR ${CHALLENGE_OFF_MESSAGE}\r\n`;
    if (name !== "REPLICATE") return "-ERR unknown command\r\n";
    if (sub === "FORMAT") return ":2\r\n";
    if (sub === "HELLO") return `+${this.lastLsn} ${this.lastEpoch} 0\r\n`;
    if (sub === "FILTER") return "+same\r\n";
    if (sub === "COMPRESS") {
      return this.compress === undefined
        ? `-ERR unknown REPLICATE subcommand "COMPRESS"\r\n`
        : `+${this.compress}\r\n`;
    }
    if (sub === "LOG" || sub === "LOGZ") {
      const records = sub === "LOG"
        ? request.args[1]
        : unpackBatch("zstd", request.args[3], Number(request.words[3]), 1 << 20);
      for (let at = 0; at < records.length; at += recordLengthAt(records, at)) {
        this.lastLsn = recordLsnAt(records, at);
        this.lastEpoch = recordEpochAt(records, at);
      }
      return `:${this.lastLsn}\r\n`;
    }
    if (sub === "PING") return `:${this.lastLsn}\r\n`;
    if (sub === "DIVERGED") return "+OK\r\n";
    if (sub === "SNAPSHOT" && step === "BEGIN") return "+OK\r\n";
    if (sub === "SNAPSHOT" && step === "CHUNK") return ":1\r\n";
    if (sub === "SNAPSHOT" && step === "END") {
      this.lastLsn = Number(request.words[3]);
      return `:${this.lastLsn}\r\n`;
    }
    return "-ERR unexpected\r\n";
  }
}

interface Harness extends AsyncDisposable {
  link: ReplicaLink;
  node: ReplicaNode;
  replica: MemoryReplica;
  refusals: string[];
}

function harness(
  log: MemoryLog,
  answer: (request: ReceivedRequest) => string | "silence" | "close",
  options: {
    authToken?: string;
    policy?: Partial<ReplicaPolicy>;
    refuseConnect?: string;
    compress?: boolean;
  } = {},
): Harness {
  const replica = new MemoryReplica(answer);
  replica.refuseConnect = options.refuseConnect;
  const node = new ReplicaNode("127.0.0.1", 1, { ...POLICY, ...options.policy });
  node.setDurableLsn(log.lastLsn);
  const refusals: string[] = [];
  const link = new ReplicaLink(node, {
    source: log,
    log: getLog("test"),
    nowMs: Date.now,
    epoch: () => log.epoch,
    snapshotChunkBytes: 64,
    maxReplyBytes: 1 << 20,
    onAck: () => {},
    onHealthChange: () => {},
    connect: replica.connect,
    authToken: options.authToken,
    compression: options.compress ? { setting: "zstd", minBytes: 0 } : undefined,
    onRefused: (_node, code, message) => refusals.push(`${code} ${message}`),
  });
  // New records reach the link as the replicator passes them on.
  log.onDurable((records, firstLsn, lastLsn) => {
    node.onDurable({ records, firstLsn, lastLsn });
    link.wake();
  });
  link.start();
  return { link, node, replica, refusals, [Symbol.asyncDispose]: () => link.stop() };
}

/** The LSNs of the LOG frames the replica received, in order. */
function loggedLsns(replica: MemoryReplica): number[] {
  const lsns: number[] = [];
  for (const request of replica.requests("REPLICATE", "LOG")) {
    const records = request.args[1];
    for (let at = 0; at < records.length; at += recordLengthAt(records, at)) {
      lsns.push(recordLsnAt(records, at));
    }
  }
  return lsns;
}

function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

Deno.test("link: a replica behind is caught up from the log, then streamed from memory, in order", async () => {
  const log = new MemoryLog(20);
  const model = new ReplicaModel(3);
  await using h = harness(log, (r) => model.answer(r));
  await waitUntil("caught up", () => h.node.ackedLsn === 20 && h.node.state === "streaming");
  log.append(5);
  await waitUntil("streamed", () => h.node.ackedLsn === 25);
  assert.deepEqual(loggedLsns(h.replica), range(4, 25));
  assert.ok(h.replica.requests("REPLICATE", "LOG").length > 2, "frames cut at the batch size");
  assert.equal(h.replica.requests("REPLICATE", "SNAPSHOT").length, 0);
  assert.equal(h.node.consecutiveFailures, 0);
});

Deno.test("link: a diverged replica is told where the logs part, then gets a full sync", async () => {
  // This master was promoted at LSN 6 (epoch 1); the replica, an old master, went on to LSN 8.
  const log = new MemoryLog(10, (lsn) => (lsn <= 5 ? 0 : 1));
  const model = new ReplicaModel(8, 0);
  await using h = harness(log, (r) => model.answer(r));
  await waitUntil("synced", () => h.node.ackedLsn === 10 && h.node.state === "streaming");
  const words = h.replica.received.map((r) => r.words.slice(0, 3).join(" "));
  const hello = words.indexOf("REPLICATE HELLO 1");
  assert.deepEqual(words.slice(hello + 1, hello + 4), [
    "REPLICATE FILTER",
    "REPLICATE DIVERGED 5",
    "REPLICATE SNAPSHOT BEGIN",
  ]);
  assert.equal(h.replica.requests("REPLICATE", "DIVERGED")[0].words[3], "1", "the master's epoch");
  assert.equal(h.node.discardedRecords, 3);
  assert.equal(h.node.fullSyncs, 1);
  assert.ok(h.replica.requests("REPLICATE", "SNAPSHOT", "CHUNK").length > 1, "in chunks");
  assert.deepEqual(h.replica.requests("REPLICATE", "SNAPSHOT", "END")[0].words[3], "10");
});

Deno.test("link: a log compacted while the replica catches up turns into a full sync", async () => {
  const log = new MemoryLog(30);
  // The handshake reads the record at LSN 2 (from 1); the catch-up from 2 finds it compacted.
  const readLogFrom = log.readLogFrom.bind(log);
  log.readLogFrom = (lsn, max) => {
    if (lsn === 2) throw new LogGapError(2, 20);
    return readLogFrom(lsn, max);
  };
  const model = new ReplicaModel(2);
  await using h = harness(log, (r) => model.answer(r));
  await waitUntil("synced", () => h.node.ackedLsn === 30 && h.node.state === "streaming");
  assert.equal(h.node.fullSyncs, 1);
  assert.equal(h.replica.requests("REPLICATE", "DIVERGED").length, 0, "nothing diverged");
  assert.equal(h.replica.requests("REPLICATE", "SNAPSHOT", "END")[0].words[3], "30");
});

Deno.test("link: no reply within the timeout fails the attempt; the next one reconnects", async () => {
  const log = new MemoryLog(5);
  const model = new ReplicaModel(0);
  let silent = true;
  await using h = harness(log, (r) => {
    if (silent && r.words[1] === "LOG") return "silence";
    return model.answer(r);
  });
  await waitUntil("failed once", () => h.node.consecutiveFailures >= 1);
  assert.match(h.node.lastError, /no reply within REPLICATION_TIMEOUT 0.3 s/);
  assert.ok(h.replica.conns[0].closed, "the failed connection is closed");
  silent = false;
  await waitUntil("caught up after a reconnect", () => h.node.ackedLsn === 5);
  assert.ok(h.replica.conns.length >= 2);
  assert.deepEqual(loggedLsns(h.replica).slice(-5), range(1, 5), "resent from the ack");
});

Deno.test("link: STALEEPOCH is reported (it deposes the master) and fails the attempt", async () => {
  const log = new MemoryLog(5);
  await using h = harness(
    log,
    (r) =>
      r.words[0] === "REPLICATE"
        ? "-STALEEPOCH 4 stale epoch 0: this replica follows epoch 4\r\n"
        : `-ERR ${CHALLENGE_OFF_MESSAGE}\r\n`,
  );
  await waitUntil("refused", () => h.refusals.length > 0);
  assert.match(h.refusals[0], /^STALEEPOCH 4 stale epoch 0/);
  await waitUntil("failed", () => h.node.consecutiveFailures >= 1);
  // The first REPLICATE word this scripted replica refuses is FORMAT (a real one answers it).
  assert.match(h.node.lastError, /replica refused (FORMAT|HELLO): STALEEPOCH/);
  assert.equal(h.replica.requests("REPLICATE", "LOG").length, 0);
});

Deno.test("link: a replica without tokens is tolerated; one that cannot prove the token gets nothing", async () => {
  const token = "a-replication-token-of-some-length";
  const log = new MemoryLog(3);
  const model = new ReplicaModel(0);
  {
    await using h = harness(log, (r) => model.answer(r), { authToken: token });
    await waitUntil("streams without tokens", () => h.node.ackedLsn === 3);
  }
  const nonce = "ab".repeat(32);
  await using h = harness(log, (r) => {
    if (r.words[0] === "CHALLENGE") return `+${nonce}\r\n`;
    // A proof made with another token.
    if (r.words[0] === "PROVE") return `+${challengeProof("another", "node", nonce, nonce)}\r\n`;
    return model.answer(r);
  }, { authToken: token });
  await waitUntil("failed", () => h.node.consecutiveFailures >= 1);
  assert.match(h.node.lastError, /did not prove it holds the replication token/);
  assert.equal(h.replica.requests("REPLICATE").length, 0, "nothing sent to it");
});

Deno.test("link: a refused connect counts a failure and is retried with backoff", async () => {
  const log = new MemoryLog(2);
  const model = new ReplicaModel(0);
  await using h = harness(log, (r) => model.answer(r), {
    policy: { maxFailures: 2 },
    refuseConnect: "connection refused",
  });
  await waitUntil("unhealthy", () => !h.node.healthy);
  assert.match(h.node.lastError, /connect failed: connection refused/);
  h.replica.refuseConnect = undefined;
  await waitUntil("healthy again", () => h.node.healthy && h.node.ackedLsn === 2);
});

Deno.test("link: retryNow ends a long backoff at once (a replica known to be back)", async () => {
  const log = new MemoryLog(2);
  const model = new ReplicaModel(0);
  await using h = harness(log, (r) => model.answer(r), {
    policy: { retryBackoffMs: 60_000, healthCheckIntervalMs: 60_000 },
    refuseConnect: "connection refused",
  });
  await waitUntil("failed", () => h.node.consecutiveFailures === 1);
  h.replica.refuseConnect = undefined;
  h.link.retryNow();
  await waitUntil("connected at once", () => h.node.ackedLsn === 2, 5_000);
});

Deno.test("link: a replica from before record format 2 is refused with what to do, never sent records", async () => {
  const log = new MemoryLog(5);
  const model = new ReplicaModel(0);
  await using h = harness(log, (r) => {
    // What a kvstore from before REPLICATE FORMAT answers.
    if (r.words[0] === "REPLICATE" && r.words[1] === "FORMAT") {
      return '-ERR unknown REPLICATE subcommand "FORMAT" (PUT, BATCHPUT, DELETE, or the ' +
        "master's HELLO, LOG, PING, SNAPSHOT)\r\n";
    }
    return model.answer(r);
  });
  await waitUntil("refused", () => h.node.lastError !== undefined && h.node.lastError !== "");
  assert.match(h.node.lastError as string, /runs an older kvstore: it reads record format 1/);
  assert.match(h.node.lastError as string, /Upgrade the replica first/);
  assert.equal(h.replica.requests("REPLICATE", "HELLO").length, 0);
  assert.equal(h.replica.requests("REPLICATE", "LOG").length, 0);
});

Deno.test("link: a replica from before compression answers COMPRESS with an error and streams uncompressed", async () => {
  const log = new MemoryLog(20);
  const model = new ReplicaModel();
  await using h = harness(log, (r) => model.answer(r), { compress: true });
  await waitUntil("caught up", () => h.node.ackedLsn === 20 && h.node.state === "streaming");
  log.append(5);
  await waitUntil("streamed", () => h.node.ackedLsn === 25);
  assert.equal(h.replica.requests("REPLICATE", "COMPRESS").length, 1);
  assert.equal(h.replica.requests("REPLICATE", "LOGZ").length, 0);
  assert.deepEqual(loggedLsns(h.replica), range(1, 25));
  assert.equal(h.node.compression, "unsupported by the replica");
  assert.equal(h.node.consecutiveFailures, 0, "the error is no failure");
  assert.deepEqual(h.refusals, []);
});

Deno.test("link: a replica that accepts zstd gets LOGZ frames that unpack to the same records", async () => {
  const log = new MemoryLog(20);
  const model = new ReplicaModel();
  model.compress = "zstd";
  await using h = harness(log, (r) => model.answer(r), { compress: true });
  await waitUntil("caught up", () => h.node.ackedLsn === 20 && h.node.state === "streaming");
  log.append(5);
  await waitUntil("streamed", () => h.node.ackedLsn === 25);
  assert.equal(h.node.compression, "zstd");
  assert.ok(h.replica.requests("REPLICATE", "LOGZ").length > 0, "packed frames were sent");
  assert.ok(h.node.sentWireBytes < h.node.sentRawBytes, "packing saved bytes");
});

Deno.test("link: a replica that answers none to COMPRESS streams uncompressed", async () => {
  const log = new MemoryLog(20);
  const model = new ReplicaModel();
  model.compress = "none";
  await using h = harness(log, (r) => model.answer(r), { compress: true });
  await waitUntil("caught up", () => h.node.ackedLsn === 20 && h.node.state === "streaming");
  assert.equal(h.replica.requests("REPLICATE", "LOGZ").length, 0);
  assert.equal(h.node.compression, "refused by the replica");
  assert.deepEqual(loggedLsns(h.replica), range(1, 20));
});
