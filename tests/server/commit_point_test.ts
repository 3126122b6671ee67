/**
 * Reads show only committed writes (`src/server/commit_point.ts`): the table of uncommitted
 * writes against a real store, and one node with `--fsync always`: a read never answers with a
 * value before the fsync that makes it durable, even when the read and the write arrive in the
 * same turn of the event loop (one group commit).
 */
import assert from "node:assert/strict";
import { CommitPoint } from "../../src/server/commit_point.ts";
import { KVStore } from "../../src/storage/mod.ts";
import { RespConn } from "../helpers/cluster.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { withStore as withStoreOf } from "../helpers/storage.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

/** Runs `body` with a store (`fsync: "always"`) in a temporary directory, closed before it goes. */
function withStore(body: (store: KVStore) => Promise<void>): Promise<void> {
  return withStoreOf({ fsync: "always" }, body, "kvstore-commit-");
}

Deno.test("commit point: without replicas a read waits for its turn's group commit", async () => {
  await withStore(async (store) => {
    const commit = new CommitPoint(store);
    await store.put("old", "1");
    assert.equal(commit.pendingLsn(bytes("old")), 0, "nothing uncommitted");
    const lsn = store.writePut("new", "2");
    commit.noteWrite(bytes("new"), lsn);
    // Not durable until the end of this turn: any read now joins that one group commit.
    assert.equal(commit.pendingLsn(bytes("new")), lsn);
    assert.equal(commit.pendingLsn(bytes("old")), lsn);
    assert.ok(commit.durableSuffices(lsn));
    assert.equal(commit.pendingAllLsn(), lsn);
    assert.equal(await commit.whenCommitted(lsn), undefined);
    assert.equal(commit.pendingLsn(bytes("new")), 0, "durable: committed");
  });
});

Deno.test("commit point: with replicas a read waits for its own key's uncommitted write", async () => {
  await withStore(async (store) => {
    const commit = new CommitPoint(store);
    let replicated = 0;
    const waited: number[] = [];
    commit.setReplication({
      committedLsn: () => replicated,
      awaitReplication: (lsn) => {
        waited.push(lsn);
        return lsn <= replicated ? undefined : Promise.resolve("not on the replicas");
      },
    });
    await store.put("old", "1");
    replicated = store.lastLsn;
    const lsn = store.writePut("new", "2");
    commit.noteWrite(bytes("new"), lsn);
    await store.whenDurable(lsn);
    assert.equal(commit.pendingLsn(bytes("new")), lsn, "durable, not replicated: wait");
    assert.equal(commit.pendingLsn(bytes("old")), 0, "another key is readable now");
    assert.equal(commit.durableSuffices(lsn), false);
    assert.equal(commit.pendingAllLsn(), lsn, "a range waits for every write");
    assert.equal(await commit.whenCommitted(lsn), "not on the replicas");
    replicated = lsn;
    assert.equal(commit.pendingLsn(bytes("new")), 0);
    assert.equal(await commit.whenCommitted(lsn), undefined);
    // A floor (a restart in sync mode, a promotion) holds every read until it is committed.
    const marker = store.writePut("marker", "");
    await store.whenDurable(marker);
    commit.raiseFloor(marker);
    assert.equal(commit.pendingLsn(bytes("old")), marker);
    replicated = marker;
    assert.equal(commit.pendingLsn(bytes("old")), 0);
    assert.deepEqual(waited, [lsn, lsn]);
  });
});

/** Events on the server's one thread, in order: a request read, a reply written, an fsync. */
type Event = { kind: "read" | "write"; text: string } | { kind: "fsync" };

Deno.test({
  name: "one node, --fsync always: a read in the write's own turn answers only after its fsync",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const events: Event[] = [];
    const decoder = new TextDecoder();
    // Observes the server's real sockets: what it read and when it wrote each reply.
    const observed = (conn: Deno.Conn): Deno.Conn =>
      new Proxy(conn, {
        get(target, prop) {
          if (prop === "read") {
            return async (buffer: Uint8Array) => {
              const n = await target.read(buffer);
              if (n !== null) {
                events.push({ kind: "read", text: decoder.decode(buffer.subarray(0, n)) });
              }
              return n;
            };
          }
          if (prop === "write") {
            return (data: Uint8Array) => {
              events.push({ kind: "write", text: decoder.decode(data) });
              return target.write(data);
            };
          }
          const value = Reflect.get(target, prop);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    await using server = await startTestServer({ FSYNC: "always" }, {
      listen: (options) => {
        const listener = Deno.listen(options);
        return new Proxy(listener, {
          get(target, prop) {
            if (prop === "accept") return async () => observed(await target.accept());
            const value = Reflect.get(target, prop);
            return typeof value === "function" ? value.bind(target) : value;
          },
        });
      },
    });
    server.node.store.fsyncObserver = () => events.push({ kind: "fsync" });
    const writer = await RespConn.open(server.port);
    const reader = await RespConn.open(server.port);
    try {
      for (let i = 0; i < 300; i++) {
        // Sent back to back: the server often reads both in one turn, the write first.
        const put = writer.send(["SET", "k", `value-${i}`]);
        const get = reader.send(["GET", "k"]);
        await Promise.all([put, get]);
      }
    } finally {
      writer.close();
      reader.close();
    }
    // For every reply carrying value-i: an fsync came between reading its SET and writing it.
    let early = 0;
    let sameTurn = 0;
    for (let at = 0; at < events.length; at++) {
      const event = events[at];
      if (event.kind !== "write") continue;
      const match = /value-(\d+)/.exec(event.text);
      if (match === null) continue;
      const setAt = events.findLastIndex((e, j) =>
        j < at && e.kind === "read" && e.text.includes(`value-${match[1]}\r\n`)
      );
      assert.ok(setAt >= 0, `the SET of value-${match[1]} was read before its value was written`);
      const between = events.slice(setAt + 1, at);
      if (!between.some((e) => e.kind === "fsync")) early++;
      if (between.some((e) => e.kind === "read" && e.text.includes("GET"))) sameTurn++;
    }
    assert.equal(early, 0, `${early} replies showed a value before its fsync`);
    console.log(`${sameTurn} of 300 reads arrived after their write's SET and before its fsync`);
  },
});
