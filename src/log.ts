/**
 * Logging for the server side, through LogTape. Text lines on a terminal (coloured when stderr is
 * a TTY), one JSON object per line with `--log-format json`. Every line goes to stderr with a
 * synchronous write, so nothing logged before a crash or an exit is lost in a buffer.
 *
 * Modules get a logger with {@link getLog}: `getLog("storage").info("recovered {keys} keys", {keys})`.
 * Properties named in braces are also fields of the JSON line, so tests and operators can read
 * them without parsing prose.
 *
 * Only server-side code imports this file: code reachable from `mod.ts` must not depend on npm.
 *
 * @module
 */
import {
  configureSync,
  getAnsiColorFormatter,
  getLogger,
  getTextFormatter,
  jsonLinesFormatter,
  type Logger,
  type LogRecord,
  resetSync,
  type Sink,
  type TextFormatter,
} from "@logtape/logtape";
import type { LogFormat, LogLevel } from "./config.ts";
import { writeAllSync } from "./write_all.ts";

const ROOT_CATEGORY = "kvstore";

/** The logger of one part of kvstore (`storage`, `server`, `replication`, ...). */
export function getLog(...category: string[]): Logger {
  return getLogger([ROOT_CATEGORY, ...category]);
}

function stderrSink(formatter: TextFormatter): Sink {
  const encoder = new TextEncoder();
  return (record: LogRecord) => {
    writeAllSync(Deno.stderr, encoder.encode(formatter(record)));
  };
}

/**
 * Configures logging once per process (later calls replace the configuration).
 *
 * @example
 * ```ts
 * import { configureLogging, getLog } from "./log.ts";
 * configureLogging({ level: "warning", format: "json" });
 * getLog("example").warn("disk {path} is nearly full", { path: "/var/lib/kvstore" });
 * ```
 */
export function configureLogging(options: { level: LogLevel; format: LogFormat }): void {
  const formatter: TextFormatter = options.format === "json"
    ? jsonLinesFormatter
    : Deno.stderr.isTerminal()
    ? getAnsiColorFormatter({ value: "bare" })
    : getTextFormatter({ timestamp: "date-time-timezone", value: "bare" });
  resetSync();
  configureSync({
    reset: true,
    sinks: { stderr: stderrSink(formatter) },
    loggers: [
      { category: [ROOT_CATEGORY], lowestLevel: options.level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}
