/**
 * A crash (kill -9) while transactions run never leaves half of one: after a restart, and on a
 * replica that kept running, every EXEC's writes are all there or none. Each transaction is
 * larger than WRITE_BATCH_MAX_BYTES, so its writes cannot ride in one group-commit write by luck.
 */
import assert from "node:assert/strict";
import {
  CLUSTER_TEST,
  KvNode,
  startCluster,
  waitUntil,
  withClusterDir,
} from "../helpers/cluster.ts";
import { encodeCommand, RawRespConnection } from "../helpers/resp3.ts";

/** Keys per transaction, and bytes per value: 16 KiB a transaction. */
const KEYS = 16;
const VALUE = "v".repeat(1024);
const SMALL_BATCH = ["--write-batch-max-bytes", "4096", "--fsync", "no"];

function transaction(round: number): Uint8Array[] {
  const commands = [encodeCommand(["MULTI"])];
  for (let i = 0; i < KEYS; i++) commands.push(encodeCommand(["SET", `tx:${round}:${i}`, VALUE]));
  commands.push(encodeCommand(["EXEC"]));
  return commands;
}

/**
 * Sends transactions on `port` until the connection breaks; returns how many were sent. The kill
 * comes 50–200 ms after the first transaction is acknowledged and `firstKept` resolves (on a loaded
 * machine a kill timed from the first send could come before anything was applied).
 */
async function sendUntilKilled(
  port: number,
  kill: () => Promise<unknown>,
  firstKept: () => Promise<unknown> = () => Promise.resolve(),
): Promise<number> {
  const conn = await RawRespConnection.open(port);
  for (const command of transaction(0)) await conn.send(command);
  for (let reply = 0; reply < KEYS + 2; reply++) await conn.readReply();
  await firstKept();
  let sent = 1;
  const killAfterMs = 50 + Math.random() * 150;
  const started = Date.now();
  let killing: Promise<unknown> | undefined;
  try {
    while (sent < 100_000) {
      for (const command of transaction(sent)) await conn.send(command);
      sent++;
      if (killing === undefined && Date.now() - started > killAfterMs) killing = kill();
      if (killing !== undefined && sent % 8 === 0) await new Promise((r) => setTimeout(r, 1));
      if (conn.closed) break;
    }
  } catch {
    // The server died under us: expected.
  }
  await killing;
  await conn[Symbol.asyncDispose]().catch(() => {});
  return sent;
}

/** The transactions of `node` that are neither whole nor absent (should be none). */
async function halfTransactions(port: number, rounds: number): Promise<string[]> {
  await using conn = await RawRespConnection.open(port);
  const half: string[] = [];
  let whole = 0;
  for (let round = 0; round < rounds; round++) {
    const keys = Array.from({ length: KEYS }, (_, i) => `tx:${round}:${i}`);
    await conn.send(["EXISTS", ...keys]);
    const reply = new TextDecoder().decode(await conn.readReply());
    const count = Number(reply.slice(1, -2));
    if (count === KEYS) whole++;
    else if (count !== 0) half.push(`round ${round}: ${count} of ${KEYS} keys`);
  }
  assert.ok(whole > 0, "no transaction was applied before the kill");
  return half;
}

Deno.test({
  name: "kill -9 during EXECs: after the restart every transaction is whole or absent",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-exec-crash-", async (dir) => {
      for (let attempt = 0; attempt < 3; attempt++) {
        const data = `${dir}/node${attempt}`;
        const node = await KvNode.start("node", data, SMALL_BATCH);
        const rounds = await sendUntilKilled(node.port, () => node.kill());
        const restarted = await KvNode.start("node", data, SMALL_BATCH);
        assert.deepEqual(await halfTransactions(restarted.port, rounds), []);
        await restarted.stop();
      }
    }),
});

Deno.test({
  name:
    "kill -9 of the master during EXECs: the replica holds every transaction whole or not at all",
  ...CLUSTER_TEST,
  fn: () =>
    withClusterDir("kvstore-exec-crash-replica-", async (dir) => {
      const { master, replicas: [replica] } = await startCluster(dir, 1, {
        masterArgs: SMALL_BATCH,
        replicaArgs: SMALL_BATCH,
      });
      const rounds = await sendUntilKilled(
        master.port,
        () => master.kill(),
        () =>
          waitUntil(
            "the replica applied the first transaction",
            async () => await replica.send(["EXISTS", "tx:0:0"]) === "1",
          ),
      );
      // What reached the replica is what it will keep: let it apply the last frame.
      let last = "";
      await waitUntil("the replica settled", async () => {
        const now = (await replica.info("replication")).get("last_applied_lsn") ?? "";
        const settled = now === last;
        last = now;
        return settled;
      });
      assert.deepEqual(await halfTransactions(replica.port, rounds), []);
    }),
});
