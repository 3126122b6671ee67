/**
 * The replication settings: the spec's eight (REPLICATION_ENABLED ... REPLICATION_TIMEOUT), then
 * the replica role, sync replicas, batch and snapshot sizes, backoff and the advertised address.
 *
 * One part of the settings table that `src/config.ts` assembles into `SETTINGS` and `Config`. A new
 * replication setting goes here: a field of {@link ReplicationConfig} and its row in {@link
 * REPLICATION_SETTINGS} (the row's place is its place in `--help` and in docs/configuration.md).
 *
 * @module
 */
import { GIB, type HostPort, KIB, MIB, type SettingSpec } from "./setting.ts";

/** Replication mode of a master (the spec's `REPLICATION_MODE`). */
export type ReplicationMode = "async" | "sync";
/** Codec of the replication stream, or `off` (src/replication/compression.ts). */
export type ReplicationCompression = "zstd" | "deflate" | "brotli" | "off";

/** The replication part of the typed settings of one node. */
export interface ReplicationConfig {
  REPLICATION_ENABLED: boolean;
  REPLICATION_MODE: ReplicationMode;
  REPLICA_ADDRESSES: HostPort[];
  REPLICATION_MAX_RETRIES: number;
  REPLICATION_QUEUE_SIZE: number;
  REPLICATION_MAX_FAILURES: number;
  REPLICATION_HEALTH_CHECK_INTERVAL: number;
  REPLICATION_TIMEOUT: number;
  REPLICA: boolean;
  DEMOTE: boolean;
  SYNC_REPLICAS: number;
  REPLICATION_BATCH_BYTES: number;
  SNAPSHOT_CHUNK_BYTES: number;
  REPLICATION_COMPRESSION: ReplicationCompression;
  REPLICATION_COMPRESSION_MIN_BYTES: number;
  REPLICATION_RETRY_BACKOFF_MS: number;
  REPLICATION_RETRY_MAX_BACKOFF_MS: number;
  REPLICA_MAX_STALENESS_MS: number;
  ADVERTISE_ADDRESS: string;
  MIN_LSN_WAIT_MS: number;
}

/** The replication rows of the settings table, in `--help` order. */
export const REPLICATION_SETTINGS: { readonly [name in keyof ReplicationConfig]: SettingSpec } = {
  REPLICATION_ENABLED: {
    kind: "bool",
    default: false,
    group: "replication",
    description: "Replicate writes to REPLICA_ADDRESSES (implied by --replicas).",
  },
  REPLICATION_MODE: {
    kind: "enum",
    default: "async",
    group: "replication",
    choices: ["async", "sync"],
    description: "async: OK after the local write; sync: OK after the replicas acknowledged it.",
  },
  REPLICA_ADDRESSES: {
    kind: "addresses",
    default: [],
    group: "replication",
    aliases: ["replicas"],
    description:
      "Replicas of this node, as host:port,host:port: a master's, or a replica's own (cascading: " +
      "it forwards its master's records to them). host:port[p1,p2] gives a replica a key filter: " +
      "it receives only keys starting with p1 or p2 (selective replication).",
  },
  REPLICATION_MAX_RETRIES: {
    kind: "int",
    default: 3,
    group: "replication",
    min: 0,
    max: 1000,
    description:
      "Quick reconnect attempts (doubling from REPLICATION_RETRY_BACKOFF_MS) after a failed " +
      "send to a replica; later ones come every REPLICATION_RETRY_MAX_BACKOFF_MS.",
  },
  REPLICATION_QUEUE_SIZE: {
    kind: "int",
    default: 10_000,
    group: "replication",
    placeholder: "<records>",
    min: 1,
    max: 100_000_000,
    description:
      "Records buffered in memory per replica; past it the replica is caught up from the log " +
      "on disk (nothing is dropped).",
  },
  REPLICATION_MAX_FAILURES: {
    kind: "int",
    default: 3,
    group: "replication",
    min: 1,
    max: 1_000_000,
    description: "Consecutive failures before a replica is marked unhealthy.",
  },
  REPLICATION_HEALTH_CHECK_INTERVAL: {
    kind: "float",
    default: 30,
    group: "replication",
    placeholder: "<seconds>",
    min: 0.01,
    max: 86_400,
    description:
      "Seconds between pings of an idle replica link; the longest a down replica waits between " +
      "probes; an unhealthy replica's failures are logged once per interval.",
  },
  REPLICATION_TIMEOUT: {
    kind: "float",
    default: 5.0,
    group: "replication",
    placeholder: "<seconds>",
    min: 0.001,
    max: 3600,
    description:
      "Seconds to wait for a replica (connect, acknowledge, and a sync write's acknowledgement).",
  },
  REPLICA: {
    kind: "bool",
    default: false,
    group: "replication",
    description: "Run as a read-only replica that accepts REPLICATE from a master.",
  },
  DEMOTE: {
    kind: "bool",
    default: false,
    group: "replication",
    description:
      "With --replica: start a node that PROMOTE made a master as a replica again, on purpose " +
      "(its writes since the promotion are replaced by a full sync from its master).",
  },
  SYNC_REPLICAS: {
    kind: "int",
    default: 0,
    group: "replication",
    min: 0,
    max: 1000,
    description:
      "In sync mode, replicas that must acknowledge a write (0: every healthy replica). A " +
      "replica keeps it, with REPLICATION_MODE, for when PROMOTE makes it a master.",
  },
  REPLICATION_BATCH_BYTES: {
    kind: "int",
    default: 1 * MIB,
    group: "replication",
    min: 1 * KIB,
    max: 1 * GIB,
    description: "Most log bytes sent to a replica in one frame.",
  },
  SNAPSHOT_CHUNK_BYTES: {
    kind: "int",
    default: 1 * MIB,
    group: "replication",
    min: 1 * KIB,
    max: 1 * GIB,
    description: "Most bytes of one full-sync snapshot chunk.",
  },
  REPLICATION_COMPRESSION: {
    kind: "enum",
    default: "zstd",
    group: "replication",
    choices: ["zstd", "deflate", "brotli", "off"],
    description:
      "Codec offered to replicas for log batches and full-sync chunks (zstd level 1 packs JSON " +
      "records 4-8x at ~800 MB/s); on a replica, whether it accepts compressed frames. Either " +
      "side off, or a replica from before compression: the stream goes uncompressed.",
  },
  REPLICATION_COMPRESSION_MIN_BYTES: {
    kind: "int",
    default: 16 * KIB,
    group: "replication",
    min: 0,
    max: 1 * GIB,
    description:
      "Smallest log batch or snapshot chunk that is compressed; smaller frames (a few live " +
      "writes) go as they are, and so does a frame compression would not shrink by 1/8 (and " +
      "the next 15 frames, untried: incompressible values cost little CPU).",
  },
  REPLICATION_RETRY_BACKOFF_MS: {
    kind: "int",
    default: 100,
    group: "replication",
    min: 1,
    max: 3_600_000,
    description:
      "Delay before the first reconnect to a failed replica; it doubles for each of the " +
      "REPLICATION_MAX_RETRIES retries, never beyond REPLICATION_RETRY_MAX_BACKOFF_MS.",
  },
  REPLICATION_RETRY_MAX_BACKOFF_MS: {
    kind: "int",
    default: 1000,
    group: "replication",
    min: 1,
    max: 3_600_000,
    description:
      "Longest wait between reconnects to a down replica (and the pace after the quick " +
      "retries), never beyond the health-check interval: a replica that comes back is " +
      "caught up within about this long.",
  },
  REPLICA_MAX_STALENESS_MS: {
    kind: "int",
    default: 0,
    group: "replication",
    min: 0,
    max: 86_400_000,
    description:
      "On a replica: refuse reads with a retryable -MASTERDOWN once its data may be older than " +
      "this (master link down that long, or that far behind); 0: always serve, however stale " +
      "(Redis's replica-serve-stale-data yes).",
  },
  ADVERTISE_ADDRESS: {
    kind: "string",
    default: "",
    group: "replication",
    placeholder: "<host:port>",
    description:
      "The host:port clients and replicas are told to reach this node at (ROLE, TOPOLOGY, the " +
      "master's HELLO); empty: the address it listens on. Set it when it listens on 0.0.0.0 " +
      "or behind a proxy.",
  },
  MIN_LSN_WAIT_MS: {
    kind: "int",
    default: 1000,
    group: "replication",
    min: 0,
    max: 600_000,
    description:
      "Longest a read that asks for at least LSN n (WITH MINLSN, a client session) waits for " +
      "this node to apply n; then it gets a retryable -TRYAGAIN error.",
  },
};
