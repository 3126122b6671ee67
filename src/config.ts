/**
 * Every setting of a kvstore node: its name, default, unit, flag, environment variable and
 * validation. The settings table is written in one file per area in `src/config/` (server,
 * storage, replication, security, operations); this file assembles it into {@link SETTINGS} and
 * the typed {@link Config}, and reads, checks and describes them. Those files are the one place
 * where a bound lives; code elsewhere reads the typed {@link Config} and never hard-codes a limit.
 *
 * Naming rule (one rule, no exceptions except the spec's short aliases):
 * setting `REPLICATION_QUEUE_SIZE` is flag `--replication-queue-size` and environment variable
 * `KVSTORE_REPLICATION_QUEUE_SIZE`. Flags win over the environment, the environment wins over the
 * default. Durations named by the spec (`REPLICATION_TIMEOUT`, `REPLICATION_HEALTH_CHECK_INTERVAL`)
 * are in seconds, as the spec says; our own settings carry their unit in the name.
 *
 * @module
 */
import { FAILOVER_SETTINGS, type FailoverConfig } from "./config/failover.ts";
import { OPERATIONS_SETTINGS, type OperationsConfig } from "./config/operations.ts";
import { REPLICATION_SETTINGS, type ReplicationConfig } from "./config/replication.ts";
import { SECURITY_SETTINGS, type SecurityConfig } from "./config/security.ts";
import { SERVER_SETTINGS, type ServerConfig } from "./config/server.ts";
import { GIB, type HostPort, type SettingSpec } from "./config/setting.ts";
import { STORAGE_SETTINGS, type StorageConfig } from "./config/storage.ts";

export type { LogFormat, LogLevel } from "./config/server.ts";
export type { FsyncPolicy } from "./config/storage.ts";
export type { ReplicationCompression, ReplicationMode } from "./config/replication.ts";
export type { HostPort } from "./config/setting.ts";

/** The typed settings of one node. Property names are the spec's configuration names. */
export interface Config
  extends
    ServerConfig,
    StorageConfig,
    ReplicationConfig,
    FailoverConfig,
    SecurityConfig,
    OperationsConfig {}

/** Name of a setting. */
export type SettingName = keyof Config;

/**
 * The settings table: the single source of every default and bound, assembled from one file per
 * area in `src/config/`. Order is the order of `--help` and of the configuration table in
 * docs/configuration.md: server, storage, replication, security, operations.
 */
export const SETTINGS: { readonly [name in SettingName]: SettingSpec } = {
  ...SERVER_SETTINGS,
  ...STORAGE_SETTINGS,
  ...REPLICATION_SETTINGS,
  ...FAILOVER_SETTINGS,
  ...SECURITY_SETTINGS,
  ...OPERATIONS_SETTINGS,
};

/** Bounds of the `kvstore` command line's client commands. */
export const CLI_LIMITS = {
  /** Largest value `put` reads from standard input or `--value-file` (the largest MAX_VALUE_BYTES). */
  maxValueInputBytes: 1 * GIB,
  /** How long a refused plain connection is probed for TLS, to say that the server wants it. */
  tlsProbeTimeoutMs: 2_000,
} as const;

/** Bounds of the request path's look-ahead (`KVStore.warmLookups`); fixed sizes, not settings. */
export const REQUEST_PATH_LIMITS = {
  /**
   * Most waiting requests whose key lookups are warmed together before a batch runs: each takes
   * about four cache lines, so 32 stay well within a core's first-level data cache (32 KiB).
   */
  warmedLookups: 32,
  /**
   * A request of more elements than this ends the look-ahead: looking past it would repeat the
   * parse of a large request (an MSET) for one key.
   */
  warmedRequestElements: 8,
  /**
   * A first argument longer than this ends the look-ahead: a key that long is rare, hashing it
   * twice costs more than its lookup's waits, and a hostile one (up to MAX_REQUEST_BYTES) would
   * be hashed for nothing before its command refuses it.
   */
  warmedKeyBytes: 1024,
  /**
   * Fewer keys than this in the store, and no lookups are warmed: the index and the values read
   * stay in the CPU's caches anyway (8,192 keys take ~1.3 MiB with their cached values), and the
   * look-ahead would be work for nothing (~5% of a GET that misses, measured on an empty store).
   */
  warmedFromKeys: 8_192,
  /**
   * Most table entries the look-ahead compares per key: a probe that has not found its key's
   * hash by then is left to the lookup itself. At the table's highest load (3/4), 4 entries end
   * ~89% of probes of present keys and the first alone ~62%; at 3/8 load, ~99% and ~81%.
   */
  warmedProbeSteps: 4,
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

/**
 * Parses `host:port[,host:port...]`; an empty string is an empty list. A replica's address may
 * end with its key filter, `host:port[prefix1,prefix2]` (selective replication): the commas
 * inside the brackets separate prefixes, not addresses.
 */
export function parseAddresses(text: string, what = "address"): HostPort[] {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < trimmed.length; i++) {
    const c = trimmed[i];
    if (c === "[") depth++;
    else if (c === "]") depth--;
    else if (c === "," && depth === 0) {
      parts.push(trimmed.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(trimmed.slice(start));
  return parts.map((part) => parseFilteredHostPort(part.trim(), what));
}

/** One `host:port` with an optional `[prefix,...]` key filter after it. */
function parseFilteredHostPort(text: string, what: string): HostPort {
  const match = /^(.*:\d{1,5})\[([^\[\]]*)\]$/.exec(text);
  if (match === null) return parseHostPort(text, what);
  const keyPrefixes = match[2].split(",").map((p) => p.trim());
  if (keyPrefixes.some((p) => p === "")) {
    throw new ConfigError(
      `${what} "${text}" has an empty key prefix: write host:port[prefix1,prefix2]`,
    );
  }
  return { ...parseHostPort(match[1], what), keyPrefixes };
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

/** Formats a `HostPort` back to `host:port` (brackets for IPv6), without its key filter. */
export function formatHostPort(address: HostPort): string {
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

/** `host:port`, then `[prefix,...]` when it has a key filter (as `--replicas` takes it). */
export function formatReplicaAddress(address: HostPort): string {
  const prefixes = address.keyPrefixes ?? [];
  return formatHostPort(address) + (prefixes.length === 0 ? "" : `[${prefixes.join(",")}]`);
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
  checkEachSetting(config);
  checkRulesBetweenSettings(config);
  return config;
}

/** Each setting's type and bounds, from its row of the table. */
function checkEachSetting(config: Config): void {
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
}

/** The rules between settings (a replica's --demote, TLS's pair of files, the buffer limits...). */
function checkRulesBetweenSettings(config: Config): void {
  if (config.DEMOTE && !config.REPLICA) {
    throw new ConfigError("--demote goes with --replica: it makes a promoted node a replica again");
  }
  if (config.REPLICATION_ENABLED && config.REPLICA_ADDRESSES.length === 0) {
    throw new ConfigError(
      "REPLICATION_ENABLED is true but REPLICA_ADDRESSES (--replicas) is empty",
    );
  }
  validateCoordinator(config);
  // A replica keeps the setting for when it is promoted (it starts with no replicas then).
  // A filtered replica (host:port[prefixes]) holds only some keys: it never counts.
  const complete = config.REPLICA_ADDRESSES.filter((a) => !a.keyPrefixes?.length).length;
  if (!config.REPLICA && config.COORDINATOR === "none" && config.SYNC_REPLICAS > complete) {
    throw new ConfigError(
      `setting SYNC_REPLICAS: ${config.SYNC_REPLICAS} is more than the ` +
        `${complete} replicas configured without a key filter`,
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
}

/** The etcd URLs of `ETCD_ENDPOINTS`. */
export function etcdEndpoints(config: Config): string[] {
  return config.ETCD_ENDPOINTS.split(",").map((url) => url.trim()).filter((url) => url !== "");
}

/** The rules of the coordinator's settings. */
function validateCoordinator(config: Config): void {
  for (const url of etcdEndpoints(config)) {
    if (!/^https?:\/\/[^\s/]+\/?$/.test(url)) {
      throw new ConfigError(
        `setting ETCD_ENDPOINTS: "${url}" is not an http(s)://host:port URL (for example ` +
          `http://127.0.0.1:2379)`,
      );
    }
  }
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(config.CLUSTER_NAME)) {
    throw new ConfigError(
      `setting CLUSTER_NAME: "${config.CLUSTER_NAME}" must be 1 to 64 letters, digits, . _ or -`,
    );
  }
  if (config.NODE_NAME !== "" && !/^[A-Za-z0-9._:\[\]-]{1,128}$/.test(config.NODE_NAME)) {
    throw new ConfigError(
      `setting NODE_NAME: "${config.NODE_NAME}" must be 1 to 128 letters, digits, . _ : - [ ]`,
    );
  }
  if (config.COORDINATOR === "none") return;
  if (etcdEndpoints(config).length === 0) {
    throw new ConfigError("--coordinator etcd needs ETCD_ENDPOINTS (--etcd-endpoints)");
  }
  if (config.REPLICA || config.REPLICA_ADDRESSES.length > 0) {
    throw new ConfigError(
      "with --coordinator etcd the role comes from etcd: every node starts as a replica and the " +
        "election makes one the master; remove --replica and --replicas",
    );
  }
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
    return value.length === 0 ? "(none)" : value.map(formatReplicaAddress).join(",");
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
