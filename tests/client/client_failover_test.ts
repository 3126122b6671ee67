/**
 * A writer loop through `KVClient({ nodes })` while the master is killed (SIGKILL) and a replica
 * promoted by scripts/failover.sh: the loop goes on by itself, and every write it was told was
 * acknowledged is on the new master.
 */
import assert from "node:assert/strict";
import { KVClient } from "../../mod.ts";
import {
  CLUSTER_TEST,
  dump,
  FAST_FAILURE_FLAGS,
  startCluster,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { runFailoverScript } from "../helpers/failover.ts";

/** Longest the writer may stall across the failover (kill, script, discovery): the bound. */
const RESUME_BOUND_MS = 30_000;

function at(port: number): string {
  return `127.0.0.1:${port}`;
}

Deno.test({
  name: "KVClient: a writer loop goes on by itself across a master kill and failover.sh; no " +
    "acknowledged write is lost",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kv-client-failover-", async (dir) => {
      const flags = ["--fsync", "no", ...FAST_FAILURE_FLAGS];
      const { master, replicas: [r1, r2] } = await startCluster(dir, 2, {
        replicaArgs: flags,
        masterArgs: flags,
      });
      // Majority: each acknowledged write is on a replica too, so the freshest replica (the one
      // the script promotes) has every one of them.
      await using client = new KVClient({
        nodes: [at(master.port), at(r1.port), at(r2.port)],
        writeConcern: { replicas: "majority", timeoutMs: 5000 },
        topologyRefreshMs: 200,
        timeoutMs: 2000,
        retryTimeoutMs: 60_000,
        maxRetries: 200,
      });
      const acknowledged = new Map<string, string>();
      const errors: string[] = [];
      let stop = false;
      let killedAtMs = 0;
      let firstAfterKillMs = 0;
      let ackedAfterKill = 0;
      const loop = (async () => {
        for (let i = 0; !stop; i++) {
          const key = `k${i}`;
          const value = `v${i}`;
          try {
            await client.put(key, value);
            acknowledged.set(key, value);
            if (killedAtMs > 0) {
              ackedAfterKill++;
              if (firstAfterKillMs === 0) firstAfterKillMs = Date.now();
            }
          } catch (error) {
            errors.push(String(error));
          }
        }
      })();
      await waitUntil("200 writes", () => acknowledged.size >= 200);
      await master.kill();
      killedAtMs = Date.now();
      const script = await runFailoverScript([
        "--old-master",
        at(master.port),
        "--replicas",
        `${at(r1.port)},${at(r2.port)}`,
      ]);
      const output = script.stdout + script.stderr;
      assert.equal(script.code, 0, output);
      const newMaster = /new master: (\S+)/.exec(output)?.[1];
      assert.ok(newMaster !== undefined, output);
      await waitUntil("200 writes after the kill", () => ackedAfterKill >= 200, RESUME_BOUND_MS);
      stop = true;
      await loop;
      const resumedMs = firstAfterKillMs - killedAtMs;
      assert.ok(resumedMs < RESUME_BOUND_MS, `resumed ${resumedMs} ms after the kill`);
      assert.deepEqual(errors, [], "the loop never saw an error: it waited and went on");
      assert.equal(client.topology().master, newMaster);
      // Every acknowledged write is on the new master.
      const node = newMaster === at(r1.port) ? r1 : r2;
      const stored = new Map((await dump(node)).map((pair) => {
        const eq = pair.indexOf("=");
        return [pair.slice(0, eq), pair.slice(eq + 1)] as const;
      }));
      const missing = [...acknowledged].filter(([key, value]) => stored.get(key) !== value);
      assert.deepEqual(missing, [], `${missing.length} of ${acknowledged.size} missing`);
    }),
});
