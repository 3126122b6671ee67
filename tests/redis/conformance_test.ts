/**
 * kvstore's replies against a real redis-server's, byte for byte, per command family (the tables
 * are in `families/`; the harness in `conformance.ts`).
 */
import { CLUSTER_TEST } from "../helpers/cluster.ts";
import { ConformanceServers, REDIS_SERVER_INSTALLED, runFamily } from "./conformance.ts";
import { FAMILIES } from "./families/mod.ts";

if (!REDIS_SERVER_INSTALLED) {
  console.log("conformance: skipped, redis-server is not installed (.ci/run installs it)");
}

Deno.test({
  name: "Redis conformance: kvstore's replies equal redis-server's, byte for byte",
  ignore: !REDIS_SERVER_INSTALLED,
  ...CLUSTER_TEST,
  fn: async (t) => {
    await using servers = new ConformanceServers();
    for (const family of FAMILIES) {
      await t.step(family.family, () => runFamily(family, servers));
    }
  },
});
