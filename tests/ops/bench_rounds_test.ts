/**
 * `deno task bench server --rounds R`: every round printed, then the median of their ratios to
 * Redis (when redis-server is installed); `--rounds` outside 1..20, or with `--out`, refused.
 */
import assert from "node:assert/strict";
import { median } from "../../scripts/stats.ts";
const ROOT = new URL("../../", import.meta.url);

async function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "bench", "server", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("bench rounds: the median of a list, odd and even", () => {
  assert.equal(median([0.9, 0.7, 0.8]), 0.8);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7]), 7);
});

Deno.test("bench rounds: --rounds 3 prints three rounds of a scenario on the same servers", async () => {
  const run = await bench([
    "--only",
    "no:put:1x1",
    "--seconds",
    "0.2",
    "--no-redis-benchmark",
    "--rounds",
    "3",
  ]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const rows = run.stdout.split("\n").filter((line) => /^no\s+put 1x1\s/.test(line));
  assert.equal(rows.length, 3, run.stdout);
  const withRedis = !/no redis-server on PATH/.test(run.stdout);
  const summary = /^no\s+put 1x1: median ratio of 3 rounds ([\d.]+)x \(([\d. ]+)\)$/m.exec(
    run.stdout,
  );
  if (withRedis) {
    assert.ok(summary !== null, run.stdout);
    const ratios = summary[2].split(" ").map(Number);
    assert.equal(ratios.length, 3);
    assert.equal(Number(summary[1]), Number(median(ratios).toFixed(2)));
  } else {
    assert.equal(summary, null, "no ratio without Redis");
  }
});

Deno.test("bench rounds: --rounds outside 1..20, or with --out, is refused before anything runs", async () => {
  for (const rounds of ["0", "21", "1.5", "x"]) {
    const run = await bench(["--only", "no:put:1x1", "--rounds", rounds]);
    assert.notEqual(run.code, 0, rounds);
    assert.match(run.stderr, /--rounds must be a whole number from 1 to 20/, rounds);
  }
  const withOut = await bench(["--only", "no:put:1x1", "--rounds", "2", "--out", "/nonexistent"]);
  assert.notEqual(withOut.code, 0);
  assert.match(withOut.stderr, /--out draws one figure per scenario: use it with --rounds 1/);
  assert.doesNotMatch(withOut.stdout, /put 1x1/);
});
