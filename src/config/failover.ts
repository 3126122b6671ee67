/**
 * The automatic-failover settings: the coordinator (etcd), the cluster and node names in it, the
 * leader lease and how long an election waits for the members to report.
 *
 * One part of the settings table that `src/config.ts` assembles into `SETTINGS` and `Config`
 * (listed with the replication settings in `--help` and docs/configuration.md).
 *
 * @module
 */
import type { SettingSpec } from "./setting.ts";

/** The failover part of the typed settings of one node. */
export interface FailoverConfig {
  COORDINATOR: "none" | "etcd";
  ETCD_ENDPOINTS: string;
  CLUSTER_NAME: string;
  NODE_NAME: string;
  FAILOVER_TTL_SECONDS: number;
  FAILOVER_SETTLE_MS: number;
  ETCD_TIMEOUT_MS: number;
}

/** The failover rows of the settings table, in `--help` order. */
export const FAILOVER_SETTINGS: { readonly [name in keyof FailoverConfig]: SettingSpec } = {
  COORDINATOR: {
    kind: "enum",
    default: "none",
    group: "replication",
    choices: ["none", "etcd"],
    description:
      "etcd: the node's role comes from etcd (automatic failover): it starts as a replica, " +
      "registers itself, and the most caught-up member holding the leader key is the master. " +
      "none: the role comes from --replica/--replicas, as before.",
  },
  ETCD_ENDPOINTS: {
    kind: "string",
    default: "http://127.0.0.1:2379",
    group: "replication",
    placeholder: "<url,...>",
    description:
      "etcd's client URLs, comma-separated; a request that fails on one is tried on the next.",
  },
  CLUSTER_NAME: {
    kind: "string",
    default: "kvstore",
    group: "replication",
    placeholder: "<name>",
    description:
      "The cluster's name in etcd: its keys live under /kvstore/<name>/ (letters, digits, . _ -).",
  },
  NODE_NAME: {
    kind: "string",
    default: "",
    group: "replication",
    placeholder: "<name>",
    description:
      "This node's name in its cluster (kvstore switchover --to NAME); empty: its advertised " +
      "address. Keep it across restarts.",
  },
  FAILOVER_TTL_SECONDS: {
    kind: "int",
    default: 10,
    group: "replication",
    placeholder: "<seconds>",
    min: 2,
    max: 3600,
    description:
      "The leader's lease in etcd: a master that cannot renew it stops acknowledging writes " +
      "before it expires, and a replica takes over about this long after the master died. " +
      "Renewed every third of it.",
  },
  FAILOVER_SETTLE_MS: {
    kind: "int",
    default: 2000,
    group: "replication",
    min: 0,
    max: 600_000,
    description:
      "Longest a candidate waits, once the leader is gone, for every registered member to report " +
      "its LSN before the most caught-up one stands (they usually report within milliseconds).",
  },
  ETCD_TIMEOUT_MS: {
    kind: "int",
    default: 1000,
    group: "replication",
    min: 10,
    max: 60_000,
    description:
      "Deadline of one etcd request on one endpoint (never more than a third of the lease).",
  },
};
