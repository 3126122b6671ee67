import assert from "node:assert/strict";
import { KVStore } from "../../src/storage/mod.ts";
import { text, withTempDir } from "../helpers/storage.ts";

const CYCLES = 24;
const WRITER = new URL("../fixtures/crash_writer.ts", import.meta.url).pathname;

type Op = { kind: "P"; key: string; value: string } | { kind: "B"; pairs: [string, string][] } | {
  kind: "D";
  key: string;
};

function parseIssue(words: string[]): Op {
  if (words[2] === "P") return { kind: "P", key: words[3], value: words[4] };
  if (words[2] === "D") return { kind: "D", key: words[3] };
  const pairs: [string, string][] = [];
  for (let i = 3; i < words.length; i += 2) pairs.push([words[i], words[i + 1]]);
  return { kind: "B", pairs };
}

function apply(state: Map<string, string>, op: Op): void {
  if (op.kind === "P") state.set(op.key, op.value);
  else if (op.kind === "D") state.delete(op.key);
  else for (const [key, value] of op.pairs) state.set(key, value);
}

function same(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [key, value] of a) if (b.get(key) !== value) return false;
  return true;
}

async function readAll(dir: string): Promise<Map<string, string>> {
  const store = await KVStore.open(dir, { segmentSizeBytes: 8 * 1024 });
  try {
    return new Map(
      store.readRange("", "\xff").map(([k, v]) => [text(k) as string, text(v) as string]),
    );
  } finally {
    await store.close();
  }
}

/** Runs the writer until it is killed; returns its issue order and acknowledged set. */
async function runAndKill(dir: string, cycle: number, killOnCompaction: boolean) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", WRITER, dir, String(cycle)],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const issued: { n: number; op: Op }[] = [];
  const acked = new Set<number>();
  let compactionsSeen = 0;
  let segmentsFromIndex = 0;
  let killedDuringCompaction = false;
  let killed = false;
  const kill = () => {
    if (!killed) {
      killed = true;
      child.kill("SIGKILL");
    }
  };
  const targetCompaction = 1 + (cycle % 3);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const decoder = new TextDecoder();
    let carry = "";
    for await (const chunk of child.stdout) {
      carry += decoder.decode(chunk, { stream: true });
      const lines = carry.split("\n");
      carry = lines.pop() ?? "";
      for (const line of lines) {
        const words = line.split(" ");
        if (line === "READY" && !killOnCompaction) {
          // A cycle of puts only, or without deletes, lives long enough for a compaction through
          // the index to finish.
          const delayMs = cycle % 3 !== 1 ? 500 + Math.random() * 500 : 30 + Math.random() * 300;
          timer = setTimeout(kill, delayMs);
        } else if (words[0] === "I") {
          issued.push({ n: Number(words[1]), op: parseIssue(words) });
        } else if (words[0] === "A") {
          acked.add(Number(words[1]));
        } else if (words[0] === "C" && words[1] === "end") {
          segmentsFromIndex += Number(words[2]);
        } else if (line === "C start" && killOnCompaction && !killed) {
          if (++compactionsSeen === targetCompaction) {
            kill();
            killedDuringCompaction = true;
          }
        }
      }
    }
  } finally {
    clearTimeout(timer);
    kill();
    await child.status;
  }
  return { issued, acked, killedDuringCompaction, segmentsFromIndex };
}

Deno.test({
  name: "crash test: SIGKILL at random moments (and mid-compaction) loses no acknowledged write",
  sanitizeResources: false,
  fn: async () => {
    await withTempDir(async (dir) => {
      let state = new Map<string, string>();
      let duringCompaction = 0;
      let totalAcked = 0;
      let segmentsFromIndex = 0;
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const run = await runAndKill(dir, cycle, cycle % 2 === 1);
        if (run.killedDuringCompaction) duringCompaction++;
        totalAcked += run.acked.size;
        segmentsFromIndex += run.segmentsFromIndex;
        const recovered = await readAll(dir);
        // Durable records are a prefix of the log, whose order is the issue order. Every
        // acknowledged operation must be inside that prefix.
        let lastAcked = -1;
        run.issued.forEach(({ n }, i) => {
          if (run.acked.has(n)) lastAcked = i;
        });
        const candidate = new Map(state);
        for (let i = 0; i <= lastAcked; i++) apply(candidate, run.issued[i].op);
        let matched = same(candidate, recovered);
        for (let i = lastAcked + 1; !matched && i < run.issued.length; i++) {
          apply(candidate, run.issued[i].op);
          matched = same(candidate, recovered);
        }
        assert.ok(
          matched,
          `cycle ${cycle}: recovered state (${recovered.size} keys) is no prefix of the issued ` +
            `operations that includes all ${run.acked.size} acknowledged ones`,
        );
        state = recovered;
      }
      assert.ok(duringCompaction >= 5, `killed during compaction ${duringCompaction} times`);
      assert.ok(totalAcked > CYCLES * 10, `only ${totalAcked} acknowledged writes in all`);
      assert.ok(segmentsFromIndex > 0, "some compactions copied segments through the index");
    });
  },
});
