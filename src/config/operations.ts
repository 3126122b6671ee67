/**
 * The operations settings: the metrics endpoint, status sampling and backups.
 *
 * One part of the settings table that `src/config.ts` assembles into `SETTINGS` and `Config`. A new
 * operations setting goes here: a field of {@link OperationsConfig} and its row in {@link
 * OPERATIONS_SETTINGS} (the row's place is its place in `--help` and in docs/configuration.md).
 *
 * @module
 */
import { type SettingSpec } from "./setting.ts";

/** The operations part of the typed settings of one node. */
export interface OperationsConfig {
  METRICS_ENABLED: boolean;
  METRICS_HOST: string;
  METRICS_PORT: number;
  STATUS_SAMPLE_INTERVAL_MS: number;
  STATUS_HISTORY_SAMPLES: number;
  BACKUP_IDLE_TIMEOUT_SECONDS: number;
  MAX_BACKUPS: number;
}

/** The operations rows of the settings table, in `--help` order. */
export const OPERATIONS_SETTINGS: { readonly [name in keyof OperationsConfig]: SettingSpec } = {
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
