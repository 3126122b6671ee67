import assert from "node:assert/strict";
import { Durability } from "../../src/storage/durability.ts";
import { StoreClosedError, StoreFailedError } from "../../src/storage/errors.ts";
import { newSegmentHeader, Segment, SEGMENT_HEADER_BYTES } from "../../src/storage/segment.ts";

function segment(id: number, sizeBytes = SEGMENT_HEADER_BYTES): Segment {
  return new Segment(id, `/nowhere/${id}.log`, newSegmentHeader(id, 0, 0), sizeBytes);
}

/** Whether `promise` has settled by the time queued microtasks ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => done = true, () => done = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  return done;
}

Deno.test("durability: waiters resolve once their records are durable, in order", async () => {
  const active = segment(1, 1000);
  const durability = new Durability("/d", 10, active);
  assert.equal(await durability.untilDurable(10), 10, "nothing pending: at once");
  durability.appended();
  const first = durability.untilDurable(11);
  durability.appended();
  const second = durability.untilDurable(12);
  assert.equal(durability.untilDurable(12), second, "same records: same promise");
  const shared = durability.whenDurable(12);
  assert.equal(durability.whenDurable(11), shared, "one promise until the next flush");
  durability.written(12);
  assert.ok(!(await settled(first)));
  durability.markDurable(1, 11, active, 900);
  assert.equal(await first, 11);
  assert.ok(!(await settled(second)));
  assert.ok(!(await settled(shared)));
  durability.markDurable(2, 12, active, 1000);
  assert.equal(await second, 12);
  await shared;
  assert.equal(durability.durableLsn, 12);
  assert.equal(durability.durableOffset, 1000);
  await durability.whenDurable(5); // an LSN below the durable one: at once
});

Deno.test("durability: durable never passes written, nor a segment's end", () => {
  const active = segment(1, 500);
  const durability = new Durability("/d", 0, active);
  durability.appended();
  assert.throws(() => durability.markDurable(1, 1, active, 500), assert.AssertionError);
  durability.written(1);
  assert.throws(() => durability.markDurable(1, 1, active, 501), assert.AssertionError);
  assert.throws(() => durability.synced(2), assert.AssertionError);
  assert.ok(durability.unsynced);
  durability.synced(1);
  assert.ok(!durability.unsynced);
  durability.markDurable(1, 1, active, 500);
  durability.markDurable(1, 99, active, 10); // not above the durable count: no change
  assert.equal(durability.durableLsn, 1);
});

Deno.test("durability: a failure rejects every waiter and every later wait; so does close", async () => {
  const active = segment(1);
  const durability = new Durability("/d", 0, active);
  durability.appended();
  const waiting = durability.untilDurable(1);
  const shared = durability.whenDurable(1);
  const failure = new StoreFailedError("/d", { cause: new Error("disk gone") });
  durability.fail(failure);
  await assert.rejects(waiting, StoreFailedError);
  await assert.rejects(shared, StoreFailedError);
  await assert.rejects(durability.whenDurable(0), StoreFailedError);
  assert.equal(durability.failure, failure);
  const closing = new Durability("/d", 0, active);
  closing.appended();
  const left = closing.whenDurable(1);
  closing.close();
  await assert.rejects(left, StoreClosedError);
  await assert.rejects(closing.untilDurable(1), StoreClosedError);
});

Deno.test("durability: a full sync restarts the log at its LSN, which may be lower", () => {
  const old = segment(4, 800);
  const durability = new Durability("/d", 500, old);
  const next = segment(9, SEGMENT_HEADER_BYTES);
  durability.restart(300, next);
  assert.equal(durability.durableLsn, 300);
  assert.equal(durability.writtenLsn, 300);
  assert.equal(durability.durableSegment, next);
  assert.equal(durability.durableOffset, SEGMENT_HEADER_BYTES);
});
