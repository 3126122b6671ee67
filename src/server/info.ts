/**
 * `INFO [section ...]`: `key:value` lines under `# Section` headers, as Redis writes them, so
 * Redis clients, exporters and operators' scripts read ours: `server` (with Redis's
 * `redis_version`, `redis_mode`, `run_id`, `uptime_in_seconds`...), `clients`, `memory`,
 * `persistence` (`loading:0`, which ioredis waits for), `stats`, `replication` (the role, plus
 * whatever replication registers), `cpu`, `keyspace` (`db0:keys=N,expires=E,avg_ttl=0`, only when
 * there are keys), then kvstore's own `storage` (from `store.stats()`) and any section an extension
 * adds. Each section keeps kvstore's own fields after Redis's.
 *
 * `INFO` alone, `INFO default`, `INFO all` and `INFO everything` give every section; several
 * names give those sections, in the order above (as Redis does); names are case-insensitive and
 * an unknown one is left out.
 *
 * @module
 */
import process from "node:process";
import { buildInfo, VERSION } from "../version.ts";
import type { InfoFields, ServerNode } from "./hooks.ts";

/**
 * The Redis version kvstore answers as (`INFO server` `redis_version`, `HELLO`'s `version`): the
 * Redis whose replies the conformance tests compare kvstore's with, byte for byte.
 */
export const REDIS_COMPATIBLE_VERSION = "7.0.15";

/** Samples per rate window (Redis's STATS_METRIC_SAMPLES) and how often one is taken. */
const RATE_SAMPLES = 16;
/** How often {@link RateSampler.sample} should run (Redis samples every 100 ms). */
export const RATE_SAMPLE_INTERVAL_MS = 100;

/**
 * Redis's instantaneous rates (`instantaneous_ops_per_sec`, `..._kbps`): the mean rate over the
 * last {@link RATE_SAMPLES} samples of a counter.
 */
export class RateSampler {
  readonly #rates = new Float64Array(RATE_SAMPLES);
  #next = 0;
  #lastValue = -1;
  #lastMs = 0;

  /** Records `value` (a counter that only grows) at `nowMs`. */
  sample(value: number, nowMs: number): void {
    if (this.#lastValue >= 0 && nowMs > this.#lastMs) {
      this.#rates[this.#next] = (value - this.#lastValue) * 1000 / (nowMs - this.#lastMs);
      this.#next = (this.#next + 1) % RATE_SAMPLES;
    }
    this.#lastValue = value;
    this.#lastMs = nowMs;
  }

  /** The mean per-second rate of the last samples. */
  get perSecond(): number {
    let sum = 0;
    for (const rate of this.#rates) sum += rate;
    return sum / RATE_SAMPLES;
  }
}

/** What INFO keeps between calls: rates and the memory peak. */
export class InfoState {
  readonly commands = new RateSampler();
  readonly inputBytes = new RateSampler();
  readonly outputBytes = new RateSampler();
  peakMemoryBytes = 0;

  /** Takes one sample of the node's counters (every {@link RATE_SAMPLE_INTERVAL_MS}). */
  sample(node: ServerNode, nowMs: number): void {
    this.commands.sample(node.stats.totalCommands, nowMs);
    this.inputBytes.sample(node.stats.netInputBytes, nowMs);
    this.outputBytes.sample(node.stats.netOutputBytes, nowMs);
  }
}

/**
 * Redis's `bytesToHuman`: `512B`, `1.17M`, `23.54G`.
 *
 * @example
 * ```ts
 * import { bytesToHuman } from "./info.ts";
 * console.log(bytesToHuman(1229568)); // 1.17M
 * ```
 */
export function bytesToHuman(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  const units = ["K", "M", "G", "T", "P"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(2)}${units[unit]}`;
}

function executable(): string {
  try {
    return Deno.execPath();
  } catch {
    return ""; // no read permission for it
  }
}

function title(name: string): string {
  return name[0].toUpperCase() + name.slice(1);
}

function serverFields(node: ServerNode): InfoFields {
  const nowMs = Date.now();
  const uptimeSeconds = Math.floor((nowMs - node.startedAtMs) / 1000);
  return [
    ["redis_version", REDIS_COMPATIBLE_VERSION],
    ["redis_git_sha1", "00000000"],
    ["redis_git_dirty", 0],
    ["redis_build_id", buildInfo().commit],
    ["redis_mode", "standalone"],
    ["os", `${title(Deno.build.os)} ${Deno.build.arch}`],
    ["arch_bits", 64],
    ["process_id", Deno.pid],
    ["process_supervised", Deno.env.get("NOTIFY_SOCKET") === undefined ? "no" : "systemd"],
    ["run_id", node.runId],
    ["tcp_port", node.port],
    ["server_time_usec", Math.floor((performance.timeOrigin + performance.now()) * 1000)],
    ["uptime_in_seconds", uptimeSeconds],
    ["uptime_in_days", Math.floor(uptimeSeconds / 86400)],
    ["hz", 10],
    ["configured_hz", 10],
    ["lru_clock", Math.floor(nowMs / 1000) & 0xffffff],
    ["executable", executable()],
    ["config_file", ""],
    ["io_threads_active", 0],
    ["kvstore_version", VERSION],
    ["deno_version", Deno.version.deno],
    ["tcp_host", node.host],
    ["resp_port", node.respPort ?? ""],
    ["data_dir", node.config.DATA_DIR],
    ["fsync", node.config.FSYNC],
  ];
}

function clientsFields(node: ServerNode): InfoFields {
  let maxInput = 0;
  let maxOutput = 0;
  for (const connection of node.connections()) {
    maxInput = Math.max(maxInput, connection.inputBufferBytes);
    maxOutput = Math.max(maxOutput, connection.unsentBytes);
  }
  return [
    ["connected_clients", node.stats.connectedClients],
    ["cluster_connections", 0],
    ["maxclients", node.config.MAX_CONNECTIONS],
    ["client_recent_max_input_buffer", maxInput],
    ["client_recent_max_output_buffer", maxOutput],
    ["blocked_clients", 0],
    ["tracking_clients", 0],
    ["clients_in_timeout_table", 0],
    ["max_connections", node.config.MAX_CONNECTIONS],
    ["rejected_connections", node.stats.rejectedConnections],
    ["evicted_unauthenticated_connections", node.stats.evictedUnauthenticated],
    ["client_memory_bytes", node.stats.clientMemoryBytes],
    ["max_client_memory_bytes", node.config.MAX_CLIENT_MEMORY_BYTES],
    ["evicted_for_memory_connections", node.stats.evictedForMemory],
    ["closed_for_output_connections", node.stats.closedForOutput],
  ];
}

function memoryFields(node: ServerNode, state: InfoState): InfoFields {
  const usage = Deno.memoryUsage();
  const used = usage.heapUsed + usage.external;
  state.peakMemoryBytes = Math.max(state.peakMemoryBytes, used);
  const peak = state.peakMemoryBytes;
  return [
    ["used_memory", used],
    ["used_memory_human", bytesToHuman(used)],
    ["used_memory_rss", usage.rss],
    ["used_memory_rss_human", bytesToHuman(usage.rss)],
    ["used_memory_peak", peak],
    ["used_memory_peak_human", bytesToHuman(peak)],
    ["used_memory_peak_perc", `${(used * 100 / peak).toFixed(2)}%`],
    ["maxmemory", 0],
    ["maxmemory_human", "0B"],
    ["maxmemory_policy", "noeviction"],
    ["mem_fragmentation_ratio", (usage.rss / used).toFixed(2)],
    ["mem_clients_normal", node.stats.clientMemoryBytes],
    ["mem_allocator", "v8"],
    ["heap_total_bytes", usage.heapTotal],
    ["heap_used_bytes", usage.heapUsed],
    ["external_bytes", usage.external],
  ];
}

function persistenceFields(node: ServerNode): InfoFields {
  const stats = node.store.stats();
  return [
    ["loading", 0],
    ["async_loading", 0],
    // Every write is in the log; these are the ones not yet at the durability point.
    ["rdb_changes_since_last_save", stats.lastLsn - stats.durableLsn],
    ["rdb_bgsave_in_progress", 0],
    ["rdb_last_save_time", Math.floor(node.startedAtMs / 1000)],
    ["rdb_last_bgsave_status", "ok"],
    ["aof_enabled", 1],
    ["aof_rewrite_in_progress", 0],
    ["aof_rewrites", stats.compactions],
    ["aof_last_bgrewrite_status", "ok"],
    ["aof_last_write_status", stats.failure === undefined ? "ok" : "err"],
    ["fsync", stats.fsync],
    ["last_lsn", stats.lastLsn],
    ["durable_lsn", stats.durableLsn],
  ];
}

function statsFields(node: ServerNode, state: InfoState): InfoFields {
  const stats = node.stats;
  const kbps = (sampler: RateSampler) => (sampler.perSecond / 1024).toFixed(2);
  return [
    ["total_connections_received", stats.totalConnections],
    ["total_commands_processed", stats.totalCommands],
    ["instantaneous_ops_per_sec", Math.round(state.commands.perSecond)],
    ["total_net_input_bytes", stats.netInputBytes],
    ["total_net_output_bytes", stats.netOutputBytes],
    ["instantaneous_input_kbps", kbps(state.inputBytes)],
    ["instantaneous_output_kbps", kbps(state.outputBytes)],
    ["rejected_connections", stats.rejectedConnections],
    ["expired_keys", node.store.stats().expiredKeys],
    ["evicted_keys", 0],
    ["evicted_clients", stats.evictedForMemory],
    ["keyspace_hits", stats.keyspaceHits],
    ["keyspace_misses", stats.keyspaceMisses],
    ["pubsub_channels", 0],
    ["pubsub_patterns", 0],
  ];
}

function cpuFields(): InfoFields {
  const usage = process.cpuUsage();
  return [
    ["used_cpu_sys", (usage.system / 1e6).toFixed(6)],
    ["used_cpu_user", (usage.user / 1e6).toFixed(6)],
    ["used_cpu_sys_children", "0.000000"],
    ["used_cpu_user_children", "0.000000"],
  ];
}

function keyspaceFields(node: ServerNode): InfoFields {
  const { keys, expiringKeys } = node.store.stats();
  // kvstore has one database; Redis lists a database only when it holds keys.
  return keys === 0 ? [] : [["db0", `keys=${keys},expires=${expiringKeys},avg_ttl=0`]];
}

function storageFields(node: ServerNode): InfoFields {
  const fields: InfoFields = [];
  for (const [name, value] of Object.entries(node.store.stats())) {
    if (typeof value === "number" || typeof value === "string" || typeof value === "boolean") {
      fields.push([snakeCase(name), value]);
    }
  }
  return fields;
}

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** The built-in sections, in the order `INFO` prints them. */
function builtInSections(node: ServerNode, state: InfoState): Map<string, () => InfoFields> {
  return new Map<string, () => InfoFields>([
    ["server", () => serverFields(node)],
    ["clients", () => clientsFields(node)],
    ["memory", () => memoryFields(node, state)],
    ["persistence", () => persistenceFields(node)],
    ["stats", () => statsFields(node, state)],
    ["replication", () => [["role", node.replica ? "replica" : "master"]]],
    ["cpu", cpuFields],
    ["keyspace", () => keyspaceFields(node)],
    ["storage", () => storageFields(node)],
  ]);
}

/** Section names that stand for every section. */
const EVERY_SECTION: ReadonlySet<string> = new Set(["all", "default", "everything"]);

/**
 * Builds the INFO text of `wanted` sections (none: every one). `extra` sections (from extensions)
 * replace built-in ones of the same name, except `replication`, whose fields follow the built-in
 * role line. Unknown sections are left out; none known gives an empty text, as in Redis.
 */
export function formatInfo(
  node: ServerNode,
  wanted: readonly string[],
  extra: ReadonlyMap<string, () => InfoFields>,
  state: InfoState,
  lineEnd: string,
): string {
  const sections = builtInSections(node, state);
  for (const [name, fields] of extra) {
    const builtIn = sections.get(name);
    if (name === "replication" && builtIn !== undefined) {
      sections.set(name, () => [...builtIn(), ...fields()]);
    } else {
      sections.set(name, fields);
    }
  }
  const asked = new Set(wanted.map((name) => name.toLowerCase()));
  const every = asked.size === 0 || [...asked].some((name) => EVERY_SECTION.has(name));
  const lines: string[] = [];
  for (const [name, fields] of sections) {
    if (!every && !asked.has(name)) continue;
    if (lines.length > 0) lines.push("");
    lines.push(`# ${title(name)}`);
    for (const [key, value] of fields()) {
      lines.push(`${key}:${typeof value === "boolean" ? (value ? 1 : 0) : value}`);
    }
  }
  return lines.length === 0 ? "" : lines.join(lineEnd) + lineEnd;
}
