/**
 * `scripts/kvstore-etcd.env`, the environment file of a node of an etcd-coordinated cluster
 * (docs/failover.md), holds only valid kvstore settings and says what the guide says it does.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";
import { readEnvFile } from "../helpers/env_file.ts";

const ENV_FILE = new URL("../../scripts/kvstore-etcd.env", import.meta.url);

Deno.test("the etcd example environment file holds only valid settings of a coordinated node", async () => {
  const env = await readEnvFile(ENV_FILE);
  const { config } = loadConfig({ env });
  assert.equal(config.COORDINATOR, "etcd");
  assert.equal(config.ETCD_ENDPOINTS.split(",").length, 3, "every etcd member");
  assert.notEqual(config.NODE_NAME, "");
  assert.notEqual(config.ADVERTISE_ADDRESS, "");
  assert.equal(config.REPLICA, false, "the role comes from etcd");
  assert.deepEqual(config.REPLICA_ADDRESSES, []);
  assert.equal(config.REPLICATION_MODE, "sync");
  assert.equal(config.FSYNC, "always");
});
