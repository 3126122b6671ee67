/**
 * Commands over many keys are atomic, as in Redis, while other clients write: an MGET of 100,000
 * keys (its values read in steps) never returns half of another client's MSET, and a DEL of as
 * many keys is never seen half done. An outside probe found both torn before (20 of 20 MGETs of
 * 200,000 keys; EXISTS of the first and last key of a running DEL answered 1).
 */
import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";
import { resp, text, WireClient } from "../helpers/wire.ts";

const KEYS = 100_000;
const encoder = new TextEncoder();

function keyName(i: number): string {
  return `t:${String(i).padStart(6, "0")}`;
}

const FIRST = keyName(0);
const LAST = keyName(KEYS - 1);

async function fill(server: Awaited<ReturnType<typeof startTestServer>>): Promise<void> {
  const store = server.node.store;
  for (let from = 0; from < KEYS; from += 10_000) {
    const pairs: [Uint8Array, Uint8Array][] = [];
    for (let i = from; i < from + 10_000; i++) {
      pairs.push([encoder.encode(keyName(i)), encoder.encode("0")]);
    }
    await store.whenDurable(store.writeBatch(pairs));
  }
}

/**
 * Runs `body` while another connection writes in a loop (`write(generation)`, one in flight,
 * bounded); returns how many writes were answered while `body` ran.
 */
async function whileWriting(
  port: number,
  write: (generation: number) => Uint8Array,
  body: () => Promise<void>,
): Promise<number> {
  await using writer = await WireClient.connect(port);
  let done = false;
  let writes = 0;
  const writing = (async () => {
    // Bounded: stops with `body`, and in any case after 1,000,000 writes.
    for (let generation = 1; !done && generation < 1_000_000; generation++) {
      await writer.send(write(generation));
      await writer.readReply(10_000);
      writes++;
    }
  })();
  try {
    await body();
  } finally {
    done = true;
    await writing;
  }
  return writes;
}

Deno.test("atomic: an MGET of 100,000 keys never sees half of another client's MSET", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await fill(server);
  const keys = Array.from({ length: KEYS }, (_, i) => keyName(i));
  await using reader = await WireClient.connect(server.port);
  const torn: string[] = [];
  let writesBefore = 0;
  const writes = await whileWriting(
    server.port,
    (generation) => resp("MSET", FIRST, String(generation), LAST, String(generation)),
    async () => {
      for (let round = 0; round < 5; round++) {
        await reader.send(resp("MGET", ...keys));
        const values = await reader.readReply(30_000);
        assert.ok(Array.isArray(values) && values.length === KEYS);
        const first = text(values[0]);
        const last = text(values[KEYS - 1]);
        if (first !== last) torn.push(`first=${first} last=${last}`);
        if (round === 0) writesBefore = Number(first);
      }
    },
  );
  assert.deepEqual(torn, []);
  // The writer really ran between the MGETs' steps (else the test proves nothing).
  assert.ok(
    writes >= 5,
    `${writes} MSETs answered while the MGETs ran (first seen ${writesBefore})`,
  );
});

Deno.test("atomic: a DEL of 100,000 keys is never seen half done", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  await fill(server);
  const keys = Array.from({ length: KEYS }, (_, i) => keyName(i));
  await using deleter = await WireClient.connect(server.port);
  await using watcher = await WireClient.connect(server.port);
  const seen: number[] = [];
  let done = false;
  const watching = (async () => {
    // Bounded: stops once the DEL is answered, and in any case after 100,000 looks.
    while (!done && seen.length < 100_000) {
      await watcher.send(resp("EXISTS", FIRST, LAST));
      seen.push(Number(await watcher.readReply(10_000)));
    }
  })();
  try {
    // Let the watcher run before the DEL arrives, so it is looking throughout.
    while (seen.length < 10) await new Promise((resolve) => setTimeout(resolve, 1));
    await deleter.send(resp("DEL", ...keys));
    assert.equal(await deleter.readReply(30_000), KEYS);
    const afterDel = seen.length;
    while (seen.length < afterDel + 3) await new Promise((resolve) => setTimeout(resolve, 1));
  } finally {
    done = true;
    await watching;
  }
  assert.equal(seen.filter((count) => count === 1).length, 0, "EXISTS first last answered 1");
  assert.equal(seen[0], 2);
  assert.equal(seen[seen.length - 1], 0);
});
