/**
 * The kvstore half of `deno task bench failover`: three nodes on a local etcd, once the etcd
 * coordinator is in this tree (undefined until then: the run says the kvstore rows are skipped).
 *
 * @module
 */
import type { FailoverCluster } from "./bench_failover.ts";

/** Three kvstore nodes coordinated by etcd, in `mode` (async or sync replication). */
export const kvstoreFailoverCluster:
  | ((dir: string, ttlSeconds: number, mode: "async" | "sync") => Promise<FailoverCluster>)
  | undefined = undefined;
