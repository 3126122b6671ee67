/**
 * Every setting of a kvstore node: its name, default, unit, flag, environment variable and
 * validation. This file is the one place where a bound lives; code elsewhere reads the typed
 * {@link Config} and never hard-codes a limit.
 *
 * Naming rule (one rule, no exceptions except the spec's short aliases):
 * setting `REPLICATION_QUEUE_SIZE` is flag `--replication-queue-size` and environment variable
 * `KVSTORE_REPLICATION_QUEUE_SIZE`. Flags win over the environment, the environment wins over the
 * default. Durations named by the spec (`REPLICATION_TIMEOUT`, `REPLICATION_HEALTH_CHECK_INTERVAL`)
 * are in seconds, as the spec says; our own settings carry their unit in the name.
 *
 * @module
 */

/** Durability policy of the write-ahead log. */
export type FsyncPolicy = "always" | "everysec" | "no";
/** Replication mode of a master (the spec's `REPLICATION_MODE`). */
export type ReplicationMode = "async" | "sync";
/** Log line format. */
export type LogFormat = "text" | "json";
/** Lowest log level that is written. */
export type LogLevel = "trace" | "debug" | "info" | "warning" | "error" | "fatal";

/** A `host:port` pair, e.g. a replica address. */
export interface HostPort {
  host: string;
  port: number;
}

/** The typed settings of one node. Property names are the spec's configuration names. */
export interface Config {
  // --- server ---
  HOST: string;
  PORT: number;
  RESP_ENABLED: boolean;
  RESP_PORT: number;
  DATA_DIR: string;
  MAX_CONNECTIONS: number;
  MAX_REQUEST_BYTES: number;
  MAX_REQUEST_ELEMENTS: number;
  MAX_INLINE_REQUEST_BYTES: number;
  MAX_PIPELINE_REQUESTS: number;
  OUTPUT_BUFFER_SOFT_LIMIT_BYTES: number;
  OUTPUT_BUFFER_HARD_LIMIT_BYTES: number;
  MAX_CLIENT_MEMORY_BYTES: number;
  REQUEST_STEP_MS: number;
  MAX_RANGE_KEYS: number;
  MAX_RANGE_BYTES: number;
  CONNECTION_BUFFER_BYTES: number;
  SHUTDOWN_TIMEOUT_SECONDS: number;
  LOG_LEVEL: LogLevel;
  LOG_FORMAT: LogFormat;
  // --- storage ---
  FSYNC: FsyncPolicy;
  SEGMENT_SIZE_BYTES: number;
  SEGMENT_PREALLOCATE_BYTES: number;
  INCREMENTAL_FSYNC_BYTES: number;
  MAX_KEY_BYTES: number;
  MAX_VALUE_BYTES: number;
  WRITE_BATCH_MAX_BYTES: number;
  COMPACTION_THRESHOLD: number;
  COMPACTION_MIN_BYTES: number;
  COMPACTION_CHUNK_BYTES: number;
  // --- replication (the spec's eight, then ours) ---
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
  REPLICATION_RETRY_BACKOFF_MS: number;
  ADVERTISE_ADDRESS: string;
  MIN_LSN_WAIT_MS: number;
  // --- security ---
  AUTH_TOKEN: string;
  AUTH_TOKEN_FILE: string;
  AUTH_MAX_FAILURES: number;
  AUTH_FAILURE_WINDOW_SECONDS: number;
  AUTH_FAILURE_DELAY_MS: number;
  AUTH_MAX_TRACKED_PEERS: number;
  AUTH_TIMEOUT_SECONDS: number;
  MAX_UNAUTHENTICATED_CONNECTIONS: number;
  MAX_UNAUTHENTICATED_REQUEST_BYTES: number;
  TLS_CERT: string;
  TLS_KEY: string;
  REPLICATION_TOKEN: string;
  REPLICATION_TOKEN_FILE: string;
  REPLICATION_TLS_CA: string;
  // --- operations ---
  METRICS_ENABLED: boolean;
  METRICS_HOST: string;
  METRICS_PORT: number;
  STATUS_SAMPLE_INTERVAL_MS: number;
  STATUS_HISTORY_SAMPLES: number;
  BACKUP_IDLE_TIMEOUT_SECONDS: number;
  MAX_BACKUPS: number;
}

/** Name of a setting. */
export type SettingName = keyof Config;

type SettingKind = "int" | "float" | "bool" | "string" | "enum" | "addresses";

interface SettingSpec {
  kind: SettingKind;
  default: Config[SettingName];
  group: "server" | "storage" | "replication" | "security" | "operations";
  description: string;
  /** A secret (a token): never shown by `CONFIG GET` or in logs. */
  secret?: boolean;
  /** Inclusive numeric bounds for int/float settings. */
  min?: number;
  max?: number;
  /** Allowed values for enum settings. */
  choices?: readonly string[];
  /** Extra flag names accepted for this setting (the spec's spellings). */
  aliases?: readonly string[];
  /** Other spellings of enum values people type, mapped to the value (`warn` → `warning`). */
  choiceAliases?: Readonly<Record<string, string>>;
  /** What `--help` shows after the flag when the kind alone does not say it (`<file>`). */
  placeholder?: string;
}

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/**
 * The settings table: the single source of every default and bound. Order is the order of
 * `--help` and of the configuration table in docs/configuration.md.
 */
export const SETTINGS: { readonly [name in SettingName]: SettingSpec } = {
  HOST: {
    kind: "string",
    default: "127.0.0.1",
    group: "server",
    placeholder: "<host>",
    description: "Address to listen on. Binding every interface (0.0.0.0) is an explicit choice.",
  },
  PORT: {
    kind: "int",
    default: 5555,
    group: "server",
    placeholder: "<port>",
    min: 0,
    max: 65535,
    description: "TCP port for clients and replication (0 picks a free port and logs it).",
  },
  RESP_ENABLED: {
    kind: "bool",
    default: false,
    group: "server",
    description:
      "Also listen on RESP_PORT, a port that speaks only Redis's protocol: RESP, and Redis's " +
      "inline commands where the main port reads the text protocol (implied by --resp-port).",
  },
  RESP_PORT: {
    kind: "int",
    default: 6379,
    group: "server",
    placeholder: "<port>",
    min: 0,
    max: 65535,
    description:
      "Port of the RESP-only listener, on HOST (Redis's port by default; 0 picks a free port and " +
      "logs it).",
  },
  DATA_DIR: {
    kind: "string",
    default: "./kvstore_data",
    group: "server",
    placeholder: "<dir>",
    description: "Directory holding the log segments, hint files and lock.",
  },
  MAX_CONNECTIONS: {
    kind: "int",
    default: 10_000,
    group: "server",
    min: 1,
    max: 1_000_000,
    description: "Connections served at once; further ones get an ERROR and are closed.",
  },
  MAX_REQUEST_BYTES: {
    kind: "int",
    default: 136 * MIB,
    group: "server",
    min: 1 * KIB,
    max: 2 * GIB,
    description: "Largest single request (a text line or a RESP array) a connection may send.",
  },
  MAX_REQUEST_ELEMENTS: {
    kind: "int",
    default: 262_144,
    group: "server",
    min: 16,
    max: 100_000_000,
    description:
      "Most words one request may hold (a RESP array's elements, e.g. the keys of an MGET); a " +
      "larger one gets an ERROR and is skipped without being buffered.",
  },
  MAX_INLINE_REQUEST_BYTES: {
    kind: "int",
    default: 64 * KIB,
    group: "server",
    min: 1 * KIB,
    max: 2 * GIB,
    description:
      "Longest Redis inline command (a line without RESP framing) on the RESP port; a longer " +
      "one gets Redis's 'too big inline request' error and the connection is closed.",
  },
  MAX_PIPELINE_REQUESTS: {
    kind: "int",
    default: 1024,
    group: "server",
    min: 1,
    max: 1_000_000,
    description: "Requests of one connection in flight at once; reading pauses past it.",
  },
  OUTPUT_BUFFER_SOFT_LIMIT_BYTES: {
    kind: "int",
    default: 4 * MIB,
    group: "server",
    min: 1 * KIB,
    max: 16 * GIB,
    description:
      "Reply bytes of one connection not yet sent at which it stops running its pipelined " +
      "requests (and reading more) until the client reads them (Redis's " +
      "client-output-buffer-limit soft bound).",
  },
  OUTPUT_BUFFER_HARD_LIMIT_BYTES: {
    kind: "int",
    default: 512 * MIB,
    group: "server",
    min: 1 * KIB,
    max: 64 * GIB,
    description:
      "A connection with more reply bytes than this not yet sent is closed, logged with the " +
      "numbers; one reply that alone would pass it (an MGET of huge values) gets an ERROR instead.",
  },
  MAX_CLIENT_MEMORY_BYTES: {
    kind: "int",
    default: 1 * GIB,
    group: "server",
    min: 1 * MIB,
    max: 1024 * GIB,
    description:
      "Read buffers (partial requests) and unsent replies of all connections together; past it " +
      "the connection holding the most is closed, logged with the numbers (Redis's " +
      "maxmemory-clients).",
  },
  REQUEST_STEP_MS: {
    kind: "float",
    default: 2,
    group: "server",
    min: 0.1,
    max: 1000,
    description:
      "Longest a request over many keys (MGET, EXISTS, DEL, READRANGE) runs before it lets " +
      "other connections be served; it goes on in further steps.",
  },
  MAX_RANGE_KEYS: {
    kind: "int",
    default: 100_000,
    group: "server",
    min: 1,
    max: 100_000_000,
    description: "Most pairs one READRANGE may return; a wider range gets an ERROR.",
  },
  MAX_RANGE_BYTES: {
    kind: "int",
    default: 256 * MIB,
    group: "server",
    min: 1 * KIB,
    max: 16 * GIB,
    description:
      "Most key and value bytes one READRANGE may return; a larger range gets an ERROR (its " +
      "sizes are checked before any value is read).",
  },
  CONNECTION_BUFFER_BYTES: {
    kind: "int",
    default: 16 * KIB,
    group: "server",
    min: 1 * KIB,
    max: 64 * MIB,
    description:
      "Initial read buffer and reply buffer of a connection; they grow for a larger request or " +
      "reply and shrink back afterwards.",
  },
  SHUTDOWN_TIMEOUT_SECONDS: {
    kind: "float",
    default: 10,
    group: "server",
    min: 0,
    max: 3600,
    description:
      "On SIGINT/SIGTERM, time allowed to finish requests and drain replicas before exit.",
  },
  LOG_LEVEL: {
    kind: "enum",
    default: "info",
    group: "server",
    choices: ["trace", "debug", "info", "warning", "error", "fatal"],
    choiceAliases: { warn: "warning", err: "error", critical: "fatal", crit: "fatal" },
    description: "Lowest level written to the log (warn is accepted for warning).",
  },
  LOG_FORMAT: {
    kind: "enum",
    default: "text",
    group: "server",
    choices: ["text", "json"],
    description: "Readable lines (text) or one JSON object per line (json).",
  },
  FSYNC: {
    kind: "enum",
    default: "always",
    group: "storage",
    choices: ["always", "everysec", "no"],
    description:
      "always: a write is acknowledged after its bytes are on disk (group commit); everysec: " +
      "fsync once a second; no: leave it to the OS.",
  },
  SEGMENT_SIZE_BYTES: {
    kind: "int",
    default: 64 * MIB,
    group: "storage",
    min: 4 * KIB,
    max: 4 * GIB,
    description: "Size at which the active log segment is sealed and a new one started.",
  },
  SEGMENT_PREALLOCATE_BYTES: {
    kind: "int",
    default: 1 * MIB,
    group: "storage",
    min: 0,
    max: 64 * MIB,
    description: "With --fsync always, the active segment is zero-filled this far ahead of its " +
      "last record, so an fsync writes data only, not the file's new size (0: off).",
  },
  INCREMENTAL_FSYNC_BYTES: {
    kind: "int",
    default: 4 * MIB,
    group: "storage",
    min: 0,
    max: 4 * GIB,
    description: "With --fsync everysec or no, an fsync in the background after every this many " +
      "bytes written, so sealing a segment never waits for a large one (Redis's " +
      "aof-rewrite-incremental-fsync; 0: off).",
  },
  MAX_KEY_BYTES: {
    kind: "int",
    default: 64 * KIB,
    group: "storage",
    min: 1,
    max: 16 * MIB,
    description: "Largest key, in bytes.",
  },
  MAX_VALUE_BYTES: {
    kind: "int",
    default: 64 * MIB,
    group: "storage",
    min: 1,
    max: 1 * GIB,
    description: "Largest value, in bytes.",
  },
  WRITE_BATCH_MAX_BYTES: {
    kind: "int",
    default: 4 * MIB,
    group: "storage",
    min: 4 * KIB,
    max: 1 * GIB,
    description: "Most bytes one group-commit write gathers before it is flushed.",
  },
  COMPACTION_THRESHOLD: {
    kind: "float",
    default: 0.3,
    group: "storage",
    placeholder: "<ratio 0..1>",
    min: 0,
    max: 1,
    description: "Garbage ratio of a sealed segment past which it is compacted automatically.",
  },
  COMPACTION_MIN_BYTES: {
    kind: "int",
    default: 1 * MIB,
    group: "storage",
    min: 0,
    max: 1024 * GIB,
    description: "Garbage bytes a sealed segment must hold before it is compacted automatically.",
  },
  COMPACTION_CHUNK_BYTES: {
    kind: "int",
    default: 1 * MIB,
    group: "storage",
    min: 64 * KIB,
    max: 64 * MIB,
    description:
      "Log bytes compaction reads (or index entries it re-points) in one step before it yields " +
      "to requests; bounds how long compaction holds the event loop.",
  },
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
      "it forwards its master's records to them).",
  },
  REPLICATION_MAX_RETRIES: {
    kind: "int",
    default: 3,
    group: "replication",
    min: 0,
    max: 1000,
    description: "Immediate reconnect attempts (with backoff) after a failed send to a replica.",
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
    description: "Seconds between probes of an unhealthy replica.",
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
  REPLICATION_RETRY_BACKOFF_MS: {
    kind: "int",
    default: 100,
    group: "replication",
    min: 1,
    max: 3_600_000,
    description:
      "Delay before the first reconnect to a failed replica; it doubles for each of the " +
      "REPLICATION_MAX_RETRIES retries, never beyond the health-check interval.",
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
  AUTH_TOKEN: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<token>",
    secret: true,
    description:
      "Token clients must send with AUTH <token> before any command but PING, AUTH and QUIT " +
      "(empty: no authentication). Prefer AUTH_TOKEN_FILE or the environment: flags show in ps.",
  },
  AUTH_TOKEN_FILE: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<file>",
    description:
      "File holding AUTH_TOKEN (one trailing newline ignored), e.g. a systemd credential.",
  },
  AUTH_MAX_FAILURES: {
    kind: "int",
    default: 10,
    group: "security",
    min: 1,
    max: 1_000_000,
    description:
      "Failed AUTH (or PROVE) attempts one client address may make per window and be answered at " +
      "once; each further failure is answered after AUTH_FAILURE_DELAY_MS and closes its " +
      "connection. A correct token is always accepted at once.",
  },
  AUTH_FAILURE_WINDOW_SECONDS: {
    kind: "float",
    default: 60,
    group: "security",
    min: 0.001,
    max: 86_400,
    description: "Length of the window in which AUTH_MAX_FAILURES are counted.",
  },
  AUTH_FAILURE_DELAY_MS: {
    kind: "int",
    default: 1000,
    group: "security",
    min: 0,
    max: 60_000,
    description:
      "Delay before the reply to a failed AUTH from an address past AUTH_MAX_FAILURES (the " +
      "connection then closes, so guesses cost a connection each; PostgreSQL's auth_delay).",
  },
  AUTH_MAX_TRACKED_PEERS: {
    kind: "int",
    default: 10_000,
    group: "security",
    min: 1,
    max: 10_000_000,
    description:
      "Client addresses whose failed AUTH attempts are remembered; past it the oldest is forgotten.",
  },
  AUTH_TIMEOUT_SECONDS: {
    kind: "float",
    default: 10,
    group: "security",
    min: 0.01,
    max: 3600,
    description:
      "With a token set, a connection that has not authenticated within this time is closed.",
  },
  MAX_UNAUTHENTICATED_CONNECTIONS: {
    kind: "int",
    default: 1000,
    group: "security",
    min: 1,
    max: 1_000_000,
    description:
      "With a token set, connections not yet authenticated (at most MAX_CONNECTIONS); a new " +
      "connection past it, or past MAX_CONNECTIONS, closes the oldest unauthenticated one of the " +
      "address holding the most, so they can never lock out a client or a master that " +
      "authenticates.",
  },
  MAX_UNAUTHENTICATED_REQUEST_BYTES: {
    kind: "int",
    default: 16 * KIB,
    group: "security",
    min: 256,
    max: 2 * GIB,
    description:
      "With a token set, the largest request a connection may send before it authenticated " +
      "(Redis limits these too); larger ones are refused and skipped.",
  },
  TLS_CERT: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<file>",
    description:
      "PEM certificate chain: with TLS_KEY, clients (and masters replicating here) must use TLS.",
  },
  TLS_KEY: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<file>",
    description: "PEM private key of TLS_CERT.",
  },
  REPLICATION_TOKEN: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<token>",
    secret: true,
    description:
      "Token of the replication stream: a replica accepts REPLICATE only on a connection that " +
      "sent AUTH with it, and a master sends it to its replicas (empty: AUTH_TOKEN is used).",
  },
  REPLICATION_TOKEN_FILE: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<file>",
    description: "File holding REPLICATION_TOKEN, e.g. a systemd credential.",
  },
  REPLICATION_TLS_CA: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<file>",
    description:
      "PEM CA a master trusts for its replicas' certificates: set, it replicates over TLS (the " +
      "replicas serve TLS_CERT).",
  },
  METRICS_ENABLED: {
    kind: "bool",
    default: false,
    group: "operations",
    description:
      "Serve the status page (/), /status.json, /metrics (Prometheus) and /health over HTTP " +
      "(implied by --metrics-port).",
  },
  METRICS_HOST: {
    kind: "string",
    default: "127.0.0.1",
    group: "operations",
    placeholder: "<host>",
    description: "Address of the metrics endpoint.",
  },
  METRICS_PORT: {
    kind: "int",
    default: 9555,
    group: "operations",
    placeholder: "<port>",
    min: 0,
    max: 65535,
    description: "Port of the metrics endpoint and status page (0 picks a free port and logs it).",
  },
  STATUS_SAMPLE_INTERVAL_MS: {
    kind: "int",
    default: 1000,
    group: "operations",
    min: 50,
    max: 3_600_000,
    description:
      "How often the status page's charts take a sample (requests/s, lag, fsync latency), and " +
      "how often the page polls /status.json.",
  },
  STATUS_HISTORY_SAMPLES: {
    kind: "int",
    default: 600,
    group: "operations",
    min: 10,
    max: 100_000,
    description:
      "Samples the status page keeps (600 at 1000 ms: the last 10 minutes); older ones are dropped.",
  },
  BACKUP_IDLE_TIMEOUT_SECONDS: {
    kind: "float",
    default: 60,
    group: "operations",
    min: 0.01,
    max: 86_400,
    description:
      "A backup whose client asks for nothing for this long is abandoned and its snapshot freed.",
  },
  MAX_BACKUPS: {
    kind: "int",
    default: 4,
    group: "operations",
    min: 1,
    max: 1000,
    description:
      "Backups running at once (each pins log segments against compaction until it ends).",
  },
};

/** Bounds of the `kvstore` command line's client commands. */
export const CLI_LIMITS = {
  /** Largest value `put` reads from standard input or `--value-file` (the largest MAX_VALUE_BYTES). */
  maxValueInputBytes: 1 * GIB,
  /** How long a refused plain connection is probed for TLS, to say that the server wants it. */
  tlsProbeTimeoutMs: 2_000,
} as const;

/** Prefix of every environment variable kvstore reads. */
export const ENV_PREFIX = "KVSTORE_";

/** Raised for a setting that is malformed or out of bounds; the message names value and limit. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** `REPLICATION_QUEUE_SIZE` → `replication-queue-size`. */
export function flagName(name: SettingName): string {
  return name.toLowerCase().replaceAll("_", "-");
}

/** `REPLICATION_QUEUE_SIZE` → `KVSTORE_REPLICATION_QUEUE_SIZE`. */
export function envName(name: SettingName): string {
  return ENV_PREFIX + name;
}

const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

/** A fresh copy of every default. */
export function defaultConfig(): Config {
  const config = {} as Record<SettingName, Config[SettingName]>;
  for (const name of SETTING_NAMES) {
    const value = SETTINGS[name].default;
    config[name] = Array.isArray(value) ? value.map((a) => ({ ...a })) : value;
  }
  return config as Config;
}

/** Parses `host:port[,host:port...]`; an empty string is an empty list. */
export function parseAddresses(text: string, what = "address"): HostPort[] {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  return trimmed.split(",").map((part) => parseHostPort(part.trim(), what));
}

/** Parses one `host:port` (IPv6 as `[::1]:5555`). */
export function parseHostPort(text: string, what = "address"): HostPort {
  const match = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(text);
  if (!match) {
    throw new ConfigError(`${what} "${text}" is not host:port (for example localhost:5556)`);
  }
  const host = match[1].startsWith("[") ? match[1].slice(1, -1) : match[1];
  const port = Number(match[2]);
  if (port < 1 || port > 65535) {
    throw new ConfigError(`${what} "${text}" has port ${port}, outside 1..65535`);
  }
  return { host, port };
}

/** Formats a `HostPort` back to `host:port` (brackets for IPv6). */
export function formatHostPort(address: HostPort): string {
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

function parseValue(name: SettingName, raw: string, source: string): Config[SettingName] {
  const spec = SETTINGS[name];
  const where = `${source} (setting ${name})`;
  switch (spec.kind) {
    case "string":
      return raw;
    case "bool": {
      const lowered = raw.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(lowered)) return true;
      if (["0", "false", "no", "off", ""].includes(lowered)) return false;
      throw new ConfigError(`${where}: "${raw}" is not a boolean (use true or false)`);
    }
    case "enum": {
      const typed = raw.trim().toLowerCase();
      const lowered = spec.choiceAliases?.[typed] ?? typed;
      if (!spec.choices?.includes(lowered)) {
        throw new ConfigError(`${where}: "${raw}" is not one of ${spec.choices?.join(", ")}`);
      }
      return lowered;
    }
    case "addresses":
      return parseAddresses(raw, `${where}: address`);
    case "int":
    case "float": {
      const text = raw.trim().replaceAll("_", "");
      const value = Number(text);
      if (text === "" || !Number.isFinite(value)) {
        throw new ConfigError(`${where}: "${raw}" is not a number`);
      }
      if (spec.kind === "int" && !Number.isInteger(value)) {
        throw new ConfigError(`${where}: "${raw}" is not a whole number`);
      }
      return value;
    }
  }
}

/**
 * Checks every setting's type and bounds, and the rules between settings. Throws
 * {@link ConfigError} naming the first problem; returns the same object when all is well.
 */
export function validateConfig(config: Config): Config {
  for (const name of SETTING_NAMES) {
    const spec = SETTINGS[name];
    const value = config[name];
    if (spec.kind === "int" || spec.kind === "float") {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        throw new ConfigError(`setting ${name}: ${String(value)} is not a number`);
      }
      if (spec.kind === "int" && !Number.isInteger(value)) {
        throw new ConfigError(`setting ${name}: ${value} is not a whole number`);
      }
      if (spec.min !== undefined && value < spec.min) {
        throw new ConfigError(`setting ${name}: ${value} is below the minimum ${spec.min}`);
      }
      if (spec.max !== undefined && value > spec.max) {
        throw new ConfigError(`setting ${name}: ${value} is above the maximum ${spec.max}`);
      }
    } else if (spec.kind === "enum" && !spec.choices?.includes(value as string)) {
      throw new ConfigError(
        `setting ${name}: "${String(value)}" is not one of ${spec.choices?.join(", ")}`,
      );
    } else if (spec.kind === "bool" && typeof value !== "boolean") {
      throw new ConfigError(`setting ${name}: ${String(value)} is not true or false`);
    }
  }
  if (config.DEMOTE && !config.REPLICA) {
    throw new ConfigError("--demote goes with --replica: it makes a promoted node a replica again");
  }
  if (config.REPLICATION_ENABLED && config.REPLICA_ADDRESSES.length === 0) {
    throw new ConfigError(
      "REPLICATION_ENABLED is true but REPLICA_ADDRESSES (--replicas) is empty",
    );
  }
  // A replica keeps the setting for when it is promoted (it starts with no replicas then).
  if (!config.REPLICA && config.SYNC_REPLICAS > config.REPLICA_ADDRESSES.length) {
    throw new ConfigError(
      `setting SYNC_REPLICAS: ${config.SYNC_REPLICAS} is more than the ` +
        `${config.REPLICA_ADDRESSES.length} replicas configured`,
    );
  }
  if ((config.TLS_CERT === "") !== (config.TLS_KEY === "")) {
    throw new ConfigError(
      `TLS needs both TLS_CERT and TLS_KEY; only ${
        config.TLS_CERT === "" ? "TLS_KEY" : "TLS_CERT"
      } ` +
        "is set",
    );
  }
  if (config.AUTH_TOKEN !== "" && config.AUTH_TOKEN_FILE !== "") {
    throw new ConfigError("give AUTH_TOKEN or AUTH_TOKEN_FILE, not both");
  }
  if (config.REPLICATION_TOKEN !== "" && config.REPLICATION_TOKEN_FILE !== "") {
    throw new ConfigError("give REPLICATION_TOKEN or REPLICATION_TOKEN_FILE, not both");
  }
  if (config.OUTPUT_BUFFER_HARD_LIMIT_BYTES < config.OUTPUT_BUFFER_SOFT_LIMIT_BYTES) {
    throw new ConfigError(
      `setting OUTPUT_BUFFER_HARD_LIMIT_BYTES: ${config.OUTPUT_BUFFER_HARD_LIMIT_BYTES} is below ` +
        `OUTPUT_BUFFER_SOFT_LIMIT_BYTES ${config.OUTPUT_BUFFER_SOFT_LIMIT_BYTES}`,
    );
  }
  if (config.MAX_CLIENT_MEMORY_BYTES < config.MAX_REQUEST_BYTES) {
    throw new ConfigError(
      `setting MAX_CLIENT_MEMORY_BYTES: ${config.MAX_CLIENT_MEMORY_BYTES} is below ` +
        `MAX_REQUEST_BYTES ${config.MAX_REQUEST_BYTES}; the largest request could never be read`,
    );
  }
  if (config.RESP_ENABLED && config.RESP_PORT !== 0 && config.RESP_PORT === config.PORT) {
    throw new ConfigError(
      `setting RESP_PORT: ${config.RESP_PORT} is also PORT; the RESP-only listener needs a port ` +
        `of its own (--resp-port)`,
    );
  }
  if (config.ADVERTISE_ADDRESS !== "") {
    parseHostPort(config.ADVERTISE_ADDRESS, "setting ADVERTISE_ADDRESS");
  }
  if (config.MAX_REQUEST_BYTES < config.MAX_KEY_BYTES) {
    throw new ConfigError(
      `setting MAX_REQUEST_BYTES: ${config.MAX_REQUEST_BYTES} is below MAX_KEY_BYTES ` +
        `${config.MAX_KEY_BYTES}; a request could never carry the largest key`,
    );
  }
  return config;
}

/** Where {@link loadConfig} reads from. */
export interface ConfigSources {
  /** Flags already split from the command line (`--port`, `6000`, ...). */
  args?: readonly string[];
  /** Environment variables (only `KVSTORE_*` ones are read). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Values set in code, over the defaults; the environment and then flags win over them. */
  overrides?: Partial<Config>;
}

/** A loaded configuration and the command-line words that were not flags. */
export interface LoadedConfig {
  config: Config;
  positionals: string[];
}

/**
 * Builds a validated {@link Config}: defaults, then `overrides`, then environment, then flags.
 * Giving `--replicas` (or `KVSTORE_REPLICA_ADDRESSES`) implies `REPLICATION_ENABLED`; giving
 * `--metrics-port` (or `KVSTORE_METRICS_PORT`) implies `METRICS_ENABLED`, and `--resp-port`
 * (or `KVSTORE_RESP_PORT`) `RESP_ENABLED`.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * const { config } = loadConfig({ args: ["--port", "5556", "--replica"], env: {} });
 * console.log(config.PORT, config.REPLICA); // 5556 true
 * ```
 */
export function loadConfig(sources: ConfigSources = {}): LoadedConfig {
  const config = defaultConfig();
  const raw = config as unknown as Record<SettingName, Config[SettingName]>;
  const explicit = new Set<SettingName>();
  for (const [name, value] of Object.entries(sources.overrides ?? {})) {
    if (!(name in SETTINGS)) throw new ConfigError(`unknown setting ${name}`);
    raw[name as SettingName] = value as Config[SettingName];
    explicit.add(name as SettingName);
  }
  const env = sources.env ?? {};
  for (const name of SETTING_NAMES) {
    const value = env[envName(name)];
    if (value !== undefined) {
      raw[name] = parseValue(name, value, `environment variable ${envName(name)}`);
      explicit.add(name);
    }
  }
  const flagToName = new Map<string, SettingName>();
  for (const name of SETTING_NAMES) {
    flagToName.set(flagName(name), name);
    for (const alias of SETTINGS[name].aliases ?? []) flagToName.set(alias, name);
  }
  const args = sources.args ?? [];
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--") || arg.length === 2) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const flag = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let name = flagToName.get(flag);
    let negated = false;
    if (name === undefined && flag.startsWith("no-")) {
      name = flagToName.get(flag.slice(3));
      negated = name !== undefined && SETTINGS[name].kind === "bool";
      if (!negated) name = undefined;
    }
    if (name === undefined) {
      throw new ConfigError(`unknown option --${flag} (see --help for every setting)`);
    }
    let text: string;
    if (eq !== -1) {
      text = arg.slice(eq + 1);
    } else if (SETTINGS[name].kind === "bool") {
      text = negated ? "false" : "true";
    } else {
      if (i + 1 >= args.length) throw new ConfigError(`option --${flag} needs a value`);
      text = args[++i];
    }
    raw[name] = parseValue(name, text, `option --${flag}`);
    explicit.add(name);
  }
  if (explicit.has("REPLICA_ADDRESSES") && !explicit.has("REPLICATION_ENABLED")) {
    config.REPLICATION_ENABLED = config.REPLICA_ADDRESSES.length > 0;
  }
  if (explicit.has("METRICS_PORT") && !explicit.has("METRICS_ENABLED")) {
    config.METRICS_ENABLED = true;
  }
  if (explicit.has("RESP_PORT") && !explicit.has("RESP_ENABLED")) {
    config.RESP_ENABLED = true;
  }
  return { config: validateConfig(config), positionals };
}

function formatDefault(name: SettingName): string {
  const value = SETTINGS[name].default;
  if (value === "") return "(none)";
  if (Array.isArray(value)) {
    return value.length === 0 ? "(none)" : value.map(formatHostPort).join(",");
  }
  return String(value);
}

/** One row per setting: name, flag, environment variable, default, description. */
export function describeSettings(): {
  name: SettingName;
  flag: string;
  env: string;
  defaultValue: string;
  group: string;
  description: string;
}[] {
  return SETTING_NAMES.map((name) => ({
    name,
    flag: `--${flagName(name)}` +
      (SETTINGS[name].aliases ?? []).map((alias) => `, --${alias}`).join(""),
    env: envName(name),
    defaultValue: formatDefault(name),
    group: SETTINGS[name].group,
    description: SETTINGS[name].description,
  }));
}

/**
 * What `--help` shows after a setting's flag: its choices (`<always|everysec|no>`), its unit
 * (`<bytes>`, `<ms>`, `<seconds>`), what it names (`<file>`, `<host:port,...>`), or nothing for a
 * switch.
 */
export function settingPlaceholder(name: SettingName): string {
  const spec = SETTINGS[name];
  if (spec.placeholder !== undefined) return spec.placeholder;
  switch (spec.kind) {
    case "bool":
      return "";
    case "enum":
      return `<${spec.choices?.join("|")}>`;
    case "addresses":
      return "<host:port,...>";
    case "string":
      return "<text>";
    default:
      for (const unit of ["BYTES", "MS", "SECONDS"]) {
        if (name.endsWith(`_${unit}`)) return `<${unit.toLowerCase()}>`;
      }
      return "<n>";
  }
}

/** The settings section of `kvstore serve --help`. */
export function formatSettingsHelp(): string {
  const lines: string[] = [];
  let group = "";
  for (const row of describeSettings()) {
    if (row.group !== group) {
      group = row.group;
      lines.push("", `${group[0].toUpperCase()}${group.slice(1)} settings:`);
    }
    const placeholder = settingPlaceholder(row.name);
    lines.push(`  ${row.flag}${placeholder === "" ? "" : ` ${placeholder}`}`);
    lines.push(`      ${row.description}`);
    lines.push(`      default: ${row.defaultValue}    env: ${row.env}`);
  }
  return lines.join("\n");
}
