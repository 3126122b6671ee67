import assert from "node:assert/strict";
import {
  AuthConfigError,
  FailureLimiter,
  resolveToken,
  tokensEqual,
} from "../../src/security/auth.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

Deno.test("tokens compare equal only when identical, whatever their lengths", () => {
  assert.equal(tokensEqual("correct horse", "correct horse"), true);
  assert.equal(tokensEqual("correct hors", "correct horse"), false);
  assert.equal(tokensEqual("", "correct horse"), false);
  assert.equal(tokensEqual(new TextEncoder().encode("tok"), "tok"), true);
  assert.equal(tokensEqual("x".repeat(10_000), "x"), false);
});

Deno.test("a token comes from the setting or from a file, never both", async () => {
  assert.equal(await resolveToken("AUTH_TOKEN", "", ""), undefined);
  assert.equal(await resolveToken("AUTH_TOKEN", "abc", ""), "abc");
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/token`, "from-file\n");
    assert.equal(await resolveToken("AUTH_TOKEN", "", `${dir}/token`), "from-file");
    await Deno.writeTextFile(`${dir}/empty`, "\n");
    await assert.rejects(resolveToken("AUTH_TOKEN", "", `${dir}/empty`), /token file .* is empty/);
    await assert.rejects(resolveToken("AUTH_TOKEN", "", `${dir}/missing`), AuthConfigError);
    await assert.rejects(resolveToken("AUTH_TOKEN", "a", `${dir}/token`), /not both/);
  });
});

Deno.test("the limiter penalizes failures past the limit until the window ends", () => {
  const limiter = new FailureLimiter({ maxFailures: 3, windowMs: 1000, maxPeers: 10 });
  assert.deepEqual(limiter.recordFailure("a", 0), {
    failuresInWindow: 1,
    penalized: false,
    shouldLog: true,
  });
  assert.equal(limiter.recordFailure("a", 10).shouldLog, false);
  assert.equal(limiter.recordFailure("a", 20).penalized, false);
  assert.deepEqual(limiter.recordFailure("a", 30), {
    failuresInWindow: 4,
    penalized: true,
    shouldLog: true,
  });
  assert.deepEqual(limiter.recordFailure("a", 40), {
    failuresInWindow: 5,
    penalized: true,
    shouldLog: false,
  });
  assert.equal(limiter.recordFailure("b", 999).penalized, false);
  assert.deepEqual(limiter.recordFailure("a", 1000), {
    failuresInWindow: 1,
    penalized: false,
    shouldLog: true,
  });
});

Deno.test("the limiter tracks a bounded number of peers, evicting the oldest", () => {
  const limiter = new FailureLimiter({ maxFailures: 1, windowMs: 60_000, maxPeers: 3 });
  for (let i = 0; i < 100; i++) limiter.recordFailure(`peer-${i}`, i);
  assert.equal(limiter.trackedPeers, 3);
  assert.equal(limiter.recordFailure("peer-99", 100).penalized, true);
  assert.equal(limiter.recordFailure("peer-0", 100).penalized, false);
});
