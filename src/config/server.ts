/**
 * The server's settings: where it listens, the RESP port, connection, request, pipeline, output
 * buffer and range bounds, shutdown and logging.
 *
 * One part of the settings table that `src/config.ts` assembles into `SETTINGS` and `Config`. A new
 * server setting goes here: a field of {@link ServerConfig} and its row in {@link SERVER_SETTINGS}
 * (the row's place is its place in `--help` and in docs/configuration.md).
 *
 * @module
 */
import { GIB, KIB, MIB, type SettingSpec } from "./setting.ts";

/** Log line format. */
export type LogFormat = "text" | "json";
/** Lowest log level that is written. */
export type LogLevel = "trace" | "debug" | "info" | "warning" | "error" | "fatal";

/** The server part of the typed settings of one node. */
export interface ServerConfig {
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
  MULTI_MAX_COMMANDS: number;
  MULTI_MAX_BYTES: number;
  WATCH_MAX_KEYS: number;
  LCS_MAX_BYTES: number;
  SCAN_MAX_CURSORS: number;
  CONNECTION_BUFFER_BYTES: number;
  SHUTDOWN_TIMEOUT_SECONDS: number;
  LOG_LEVEL: LogLevel;
  LOG_FORMAT: LogFormat;
}

/** The server rows of the settings table, in `--help` order. */
export const SERVER_SETTINGS: { readonly [name in keyof ServerConfig]: SettingSpec } = {
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
      "Read buffers (partial requests), unsent replies and MULTI queues of all connections " +
      "together; past it the connection holding the most is closed, logged with the numbers " +
      "(Redis's maxmemory-clients).",
  },
  REQUEST_STEP_MS: {
    kind: "float",
    default: 2,
    group: "server",
    min: 0.1,
    max: 1000,
    description:
      "Longest a request over many keys (the value reads of an MGET, READRANGE, KEYS, SCAN) " +
      "runs before it lets other connections be served; it goes on in further steps.",
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
  MULTI_MAX_COMMANDS: {
    kind: "int",
    default: 100_000,
    group: "server",
    min: 1,
    max: 100_000_000,
    description:
      "Most commands one connection may queue between MULTI and EXEC; one more is refused and " +
      "makes EXEC abort (EXECABORT), as any error while queuing does.",
  },
  MULTI_MAX_BYTES: {
    kind: "int",
    default: 64 * MIB,
    group: "server",
    min: 1 * KIB,
    max: 16 * GIB,
    description:
      "Most bytes of arguments one connection may queue between MULTI and EXEC; past it the " +
      "command is refused and EXEC aborts (EXECABORT).",
  },
  WATCH_MAX_KEYS: {
    kind: "int",
    default: 10_000,
    group: "server",
    min: 1,
    max: 100_000_000,
    description:
      "Most keys one connection may WATCH at once; a WATCH past it is refused (nothing of it " +
      "is watched). Registering a key costs about 1.5 µs of the event loop and ~100 bytes.",
  },
  SCAN_MAX_CURSORS: {
    kind: "int",
    default: 100_000,
    group: "server",
    min: 16,
    max: 100_000_000,
    description:
      "SCAN cursors remembered (each holds the last key it returned); past it the oldest is " +
      "forgotten, and a SCAN given a forgotten (or made-up) cursor starts over from the first key.",
  },
  LCS_MAX_BYTES: {
    kind: "int",
    default: 64 * MIB,
    min: 1 * KIB,
    max: 512 * MIB,
    group: "server",
    description:
      "Largest table Redis's LCS may build, (len1 + 1) x (len2 + 1) x 4 bytes: bounds its memory " +
      "and the time it holds the event loop (64 MiB: about 0.1 s).",
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
};
