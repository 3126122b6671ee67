import assert from "node:assert/strict";
import { configureSync, getLogger, type LogRecord, resetSync } from "@logtape/logtape";
import { LimitLog } from "../../src/server/limit_log.ts";

/**
 * Runs `fn` with a LimitLog whose interval is 1000 ms on a clock the test sets, logging into the
 * returned records.
 */
function withLimitLog(fn: (limits: LimitLog, setNow: (ms: number) => void) => void): LogRecord[] {
  const records: LogRecord[] = [];
  configureSync({
    reset: true,
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["limit-test"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    let nowMs = 0;
    const limits = new LimitLog(getLogger(["limit-test"]), {
      intervalMs: 1000,
      nowMs: () => nowMs,
    });
    fn(limits, (ms) => (nowMs = ms));
    return records;
  } finally {
    resetSync();
  }
}

Deno.test("a bound hit is logged with its number once per interval, then with the count missed", () => {
  const records = withLimitLog((limits, setNow) => {
    limits.hit("MAX_CONNECTIONS", 2, "refused {peer}", { peer: "a" });
    setNow(10);
    limits.hit("MAX_CONNECTIONS", 2, "refused {peer}", { peer: "b" });
    limits.hit("MAX_CONNECTIONS", 2, "refused {peer}", { peer: "c" });
    limits.hit("MAX_REQUEST_BYTES", 4096, "skipped a request");
    setNow(1500);
    limits.hit("MAX_CONNECTIONS", 2, "refused {peer}", { peer: "d" });
  });
  assert.deepEqual(
    records.map((r) => [r.level, r.properties.setting, r.properties.limit, r.properties.unlogged]),
    [
      ["warning", "MAX_CONNECTIONS", 2, 0],
      ["warning", "MAX_REQUEST_BYTES", 4096, 0],
      ["warning", "MAX_CONNECTIONS", 2, 2],
    ],
  );
  assert.equal(records[2].properties.peer, "d");
});

Deno.test("a note (a bad request a peer can repeat) is logged once per interval per kind", () => {
  const records = withLimitLog((limits, setNow) => {
    for (let i = 0; i < 5; i++) {
      limits.note("bad_replicate", "warning", "refused {peer}", { peer: i });
    }
    limits.note("internal_error", "error", "failed");
    setNow(1000);
    limits.note("bad_replicate", "warning", "refused {peer}", { peer: 9 });
  });
  assert.deepEqual(
    records.map((r) => [r.level, r.properties.event, r.properties.unlogged, r.properties.peer]),
    [
      ["warning", "bad_replicate", 0, 0],
      ["error", "internal_error", 0, undefined],
      ["warning", "bad_replicate", 4, 9],
    ],
  );
});
