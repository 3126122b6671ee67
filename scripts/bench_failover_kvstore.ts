/**
 * The kvstore half of `deno task bench failover`: three nodes on a local etcd.
 *
 * @module
 */
import type { FailoverCluster } from "./bench_failover.ts";

/** Three kvstore nodes coordinated by etcd, in `mode` (async or sync replication). */
export function kvstoreFailoverCluster(
  _dir: string,
  _ttlSeconds: number,
  _mode: "async" | "sync",
): Promise<FailoverCluster> {
  return Promise.reject(new Error("kvstore's etcd coordinator is not on this branch yet"));
}
