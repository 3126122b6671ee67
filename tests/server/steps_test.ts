/**
 * Requests over many keys: an MGET of 100,000 keys reads its values in steps, and READRANGE its
 * pages, so another connection keeps getting answers meanwhile; EXISTS and DEL of as many keys
 * run at once (atomic, as in Redis), so nobody is answered between their first and last key. The
 * big request's own reply and the requests pipelined after it are exactly what they would be
 * without steps. In-process server: the test watches the store calls the big request makes and
 * counts the bystander's answers that arrive between its first and its last one.
 */
import assert from "node:assert/strict";
import { KVClient } from "../../mod.ts";
import type { KVStore } from "../../src/storage/mod.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { resp, text, WireClient } from "../helpers/wire.ts";

const KEYS = 100_000;
const encoder = new TextEncoder();

function keyName(i: number): string {
  return `key:${String(i).padStart(6, "0")}`;
}

/** Fills the store with KEYS keys (value = the key's number). */
async function fill(store: KVStore): Promise<void> {
  for (let from = 0; from < KEYS; from += 10_000) {
    const pairs: [Uint8Array, Uint8Array][] = [];
    for (let i = from; i < from + 10_000; i++) {
      pairs.push([encoder.encode(keyName(i)), encoder.encode(String(i))]);
    }
    await store.whenDurable(store.writeBatch(pairs));
  }
}

/** Installs a watch that calls `onCall` on each call of a store method; returns its undo. */
type Watch = (store: KVStore, onCall: () => void) => () => void;

/** Watches `method` of the store. */
function watchMethod(method: "has" | "writeDelete" | "readRange"): Watch {
  return (store, onCall) => {
    const target = store as unknown as Record<string, (...args: unknown[]) => unknown>;
    const original = target[method];
    target[method] = function (this: unknown, ...args: unknown[]) {
      onCall();
      return original.apply(this, args);
    };
    return () => {
      target[method] = original;
    };
  };
}

/** Watches the value reads of an MGET in steps (the values `KVStore.holdValues` held). */
const watchHeldReads: Watch = (store, onCall) => {
  const hold = store.holdValues;
  store.holdValues = function (this: KVStore, keys) {
    const held = hold.call(this, keys);
    const value = held.value.bind(held);
    held.value = (i) => {
      onCall();
      return value(i);
    };
    return held;
  };
  return () => {
    store.holdValues = hold;
  };
};

/**
 * Runs `request` on its own connection while a bystander PINGs (one in flight) on another; the
 * store calls `watch` names are watched: returns the big request's reply and how many PONGs
 * arrived between the first and the last of them.
 */
async function whileBystanderPings(
  port: number,
  store: KVStore,
  watch: Watch,
  request: Uint8Array,
): Promise<{ reply: unknown; pongsDuring: number }> {
  await using bystander = await WireClient.connect(port);
  await using big = await WireClient.connect(port);
  let pongs = 0;
  let atFirst: number | undefined;
  let atLast = 0;
  const undo = watch(store, () => {
    atFirst ??= pongs;
    atLast = pongs;
  });
  let done = false;
  const pinging = (async () => {
    // Bounded: stops with the big request, and in any case after 100,000 PINGs.
    while (!done && pongs < 100_000) {
      await bystander.send(resp("PING"));
      assert.equal(await bystander.readReply(), "PONG");
      pongs++;
    }
  })();
  try {
    await big.send(request);
    const reply = await big.readReply(30_000);
    return { reply, pongsDuring: atLast - (atFirst ?? 0) };
  } finally {
    done = true;
    await pinging;
    undo();
  }
}

function respOf(words: string[]): Uint8Array {
  return resp(...words);
}

Deno.test("steps: MGET and READRANGE of 100,000 keys let a bystander be served; EXISTS and DEL run at once", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  const store = server.node.store;
  await fill(store);
  const keys = Array.from({ length: KEYS }, (_, i) => keyName(i));

  const mget = await whileBystanderPings(
    server.port,
    store,
    watchHeldReads,
    respOf(["MGET", ...keys]),
  );
  assert.ok(Array.isArray(mget.reply));
  assert.equal(mget.reply.length, KEYS);
  assert.equal(text(mget.reply[0]), "0");
  assert.equal(text(mget.reply[KEYS - 1]), String(KEYS - 1));
  assert.ok(mget.pongsDuring >= 3, `MGET: ${mget.pongsDuring} answers to the bystander`);

  const exists = await whileBystanderPings(
    server.port,
    store,
    watchMethod("has"),
    respOf(["EXISTS", ...keys]),
  );
  assert.equal(exists.reply, KEYS);
  assert.equal(exists.pongsDuring, 0, "EXISTS looks every key up at once");

  const range = await whileBystanderPings(
    server.port,
    store,
    watchMethod("readRange"),
    respOf(["READRANGE", keyName(0), keyName(KEYS - 1)]),
  );
  assert.ok(Array.isArray(range.reply));
  assert.equal(range.reply.length, 2 * KEYS);
  assert.equal(text(range.reply[2 * KEYS - 2]), keyName(KEYS - 1));
  assert.ok(range.pongsDuring >= 3, `READRANGE: ${range.pongsDuring} answers to the bystander`);

  const lsnBefore = store.lastLsn;
  const del = await whileBystanderPings(
    server.port,
    store,
    watchMethod("writeDelete"),
    respOf(["DEL", ...keys]),
  );
  assert.equal(del.reply, KEYS);
  assert.equal(del.pongsDuring, 0, "DEL deletes every key at once");
  assert.equal(store.stats().keys, 0);
  // One record for all of them: a crash keeps all the deletes or none.
  assert.equal(store.lastLsn, lsnBefore + 1);
});

Deno.test("steps: requests pipelined after a stepped MGET run after it, in order", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await fill(server.node.store);
  const keys = Array.from({ length: 5000 }, (_, i) => keyName(i));
  await using wire = await WireClient.connect(server.port);
  await wire.send(
    new Uint8Array([
      ...respOf(["MGET", ...keys]),
      ...respOf(["SET", keyName(0), "changed"]),
      ...respOf(["GET", keyName(0)]),
    ]),
  );
  const values = await wire.readReply();
  assert.ok(Array.isArray(values));
  assert.equal(text(values[0]), "0");
  assert.equal(await wire.readReply(), "OK");
  assert.equal(text(await wire.readReply()), "changed");
  // The text framing answers a stepped MGET the same way.
  await wire.send(`MGET ${keys.join(" ")}\n`);
  const line = text(await readLine(wire));
  assert.equal(String(line).split("||").length, 5000);
  assert.equal(String(line).split("||")[1], "1");
});

async function readLine(wire: WireClient): Promise<string> {
  return await wire.readLine(10_000);
}

Deno.test("steps: a stepped MGET whose reply would pass OUTPUT_BUFFER_HARD_LIMIT_BYTES gets an error", async () => {
  await using server = await startTestServer({
    FSYNC: "no",
    OUTPUT_BUFFER_SOFT_LIMIT_BYTES: 64 * 1024,
    OUTPUT_BUFFER_HARD_LIMIT_BYTES: 1024 * 1024,
  });
  await using client = new KVClient({ port: server.port, timeoutMs: 10_000 });
  await client.put("big", "x".repeat(4096));
  const keys = Array(1000).fill("big");
  await assert.rejects(
    client.send(["MGET", ...keys]),
    /MGET reply would be larger than OUTPUT_BUFFER_HARD_LIMIT_BYTES \(1048576 bytes\)/,
  );
  assert.equal(
    await client.send(["MGET", "big", "missing"]).then((r) => (r as unknown[]).length),
    2,
  );
});

Deno.test("steps: a reply being built in steps counts against MAX_CLIENT_MEMORY_BYTES", async () => {
  await using server = await startTestServer({
    FSYNC: "no",
    MAX_REQUEST_BYTES: 1024 * 1024,
    MAX_CLIENT_MEMORY_BYTES: 4 * 1024 * 1024,
    REQUEST_STEP_MS: 0.1,
  });
  await using client = new KVClient({ port: server.port, timeoutMs: 10_000 });
  await client.put("v", "x".repeat(4096));
  const request = respOf(["MGET", ...Array(2000).fill("v")]);
  const wires = await Promise.all([1, 2, 3].map(() => WireClient.connect(server.port)));
  const store = server.node.store;
  let reads = 0;
  const undo = watchHeldReads(store, () => reads++);
  try {
    for (const wire of wires) await wire.send(request);
    const outcomes = await Promise.all(
      wires.map((wire) => wire.readReply(10_000).then(() => "answered", () => "closed")),
    );
    assert.ok(outcomes.includes("closed"), outcomes.join());
    assert.ok(server.node.stats.evictedForMemory >= 1);
    // Evicted while its reply was being built: its MGET stopped, it did not read every key.
    assert.ok(reads < 3 * 2000, `${reads} reads`);
    assert.equal(await client.read("v").then((v) => v?.length), 4096);
  } finally {
    undo();
    for (const wire of wires) wire.close();
  }
});

Deno.test("steps: a graceful stop lets a running MGET finish and answers it", async () => {
  const server = await startTestServer({ FSYNC: "no" });
  try {
    const store = server.node.store;
    await fill(store);
    const keys = Array.from({ length: KEYS }, (_, i) => keyName(i));
    let closing: Promise<void> | undefined;
    let reads = 0;
    // Half-way, so between two steps, as a SIGTERM arrives (never inside one).
    const undo = watchHeldReads(store, () => {
      if (++reads === KEYS / 2) closing = server.close();
    });
    try {
      await using wire = await WireClient.connect(server.port);
      await wire.send(respOf(["MGET", ...keys]));
      const values = await wire.readReply(30_000);
      assert.ok(Array.isArray(values) && values.length === KEYS);
      assert.equal(text(values[KEYS - 1]), String(KEYS - 1));
      assert.ok(closing !== undefined, "the stop began while the MGET ran");
      await closing;
    } finally {
      undo();
    }
  } finally {
    await server.close();
  }
});

Deno.test("steps: a stepped MGET's arguments count against MAX_CLIENT_MEMORY_BYTES while it runs", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  const store = server.node.store;
  await fill(store);
  const keys = Array.from({ length: KEYS }, (_, i) => keyName(i));
  let countedWhileRunning = 0;
  const undo = watchHeldReads(store, () => {
    countedWhileRunning = Math.max(countedWhileRunning, server.node.stats.clientMemoryBytes);
  });
  try {
    await using wire = await WireClient.connect(server.port);
    await wire.send(respOf(["MGET", ...keys]));
    assert.equal((await wire.readReply(30_000) as unknown[]).length, KEYS);
  } finally {
    undo();
  }
  // A view of ~100 bytes for each of the 100,000 keys lives as long as the MGET runs.
  assert.ok(countedWhileRunning >= KEYS * 100, `${countedWhileRunning} bytes counted`);
});
