/**
 * `kvstore serve [settings]`: loads the configuration (flags, then `KVSTORE_*` environment
 * variables, then defaults), starts the server, and stops it gracefully on SIGINT or SIGTERM:
 * no new connections, in-flight requests finished, the log flushed and synced, exit 0. A second
 * signal exits at once with status 1.
 *
 * @module
 */
import {
  type Config,
  ConfigError,
  envName,
  formatHostPort,
  formatSettingsHelp,
  loadConfig,
  type SettingName,
  SETTINGS,
} from "../config.ts";
import { backupExtension } from "../backup/extension.ts";
import { coordinatorExtension } from "../coordinator/extension.ts";
import { configureLogging, getLog } from "../log.ts";
import { metricsExtension } from "../metrics/extension.ts";
import { Registry } from "../metrics/registry.ts";
import { replicationExtensionWith } from "../replication/extension.ts";
import { resolveToken } from "../security/auth.ts";
import { authExtension } from "../security/auth_extension.ts";
import { replicationConnect, tlsListen } from "../security/tls.ts";
import { StoreLockedError } from "../storage/errors.ts";
import { describeHolder, lockHolder, removeRunningFile, writeRunningFile } from "./lock_holder.ts";
import { type RunningServer, startServer, type StartServerOptions } from "../server/mod.ts";

/** Usage of `kvstore serve`. */
export const SERVE_USAGE = `Usage: kvstore serve [settings]

Starts a node: a master by default, a read-only replica with --replica. Every setting below is
also read from its environment variable (flags win). The node logs one line with
event "listening" and the bound host and port once it accepts connections (--port 0 picks a free
port); SIGINT or SIGTERM stop it gracefully.
`;

/**
 * Reads the `KVSTORE_*` variables one by one (`Deno.env.toObject()` would need permission to
 * read every variable; `deno task serve` grants only `KVSTORE_*`).
 */
export function settingsEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const value = Deno.env.get(envName(name));
    if (value !== undefined) env[envName(name)] = value;
  }
  return env;
}

/** Parses the settings of `kvstore serve`; prints the problem and returns undefined if bad. */
export function serveConfig(args: string[]): Config | undefined {
  try {
    const { config, positionals } = loadConfig({ args, env: settingsEnvironment() });
    if (positionals.length > 0) {
      console.error(
        `kvstore serve: unexpected argument "${positionals[0]}" (see kvstore serve --help)`,
      );
      return undefined;
    }
    return config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`kvstore serve: ${error.message}`);
    return undefined;
  }
}

/**
 * Everything a node's settings plug into the server: replication (with its token, TLS to the
 * replicas and metrics), authentication (tokens read now, from the settings or their files),
 * metrics, backups, and the TLS listener. `extra` extensions come first; an `extra.listen` wins
 * over TLS.
 */
export async function nodeOptions(
  config: Config,
  extra: StartServerOptions = {},
): Promise<StartServerOptions> {
  const clientToken = await resolveToken("AUTH_TOKEN", config.AUTH_TOKEN, config.AUTH_TOKEN_FILE);
  const replicationToken = await resolveToken(
    "REPLICATION_TOKEN",
    config.REPLICATION_TOKEN,
    config.REPLICATION_TOKEN_FILE,
  ) ?? clientToken;
  const registry = new Registry();
  return {
    extensions: [
      ...(extra.extensions ?? []),
      replicationExtensionWith({
        authToken: replicationToken,
        connect: await replicationConnect(config),
        registry,
      }),
      // After replication: it drives the role replication owns.
      coordinatorExtension(registry),
      authExtension({ client: clientToken, replication: replicationToken }, registry),
      metricsExtension(registry),
      backupExtension(),
    ],
    listen: extra.listen ?? await tlsListen(config),
  };
}

/**
 * Why the metrics port cannot be served, checked before anything else starts (so a taken port
 * leaves no data directory behind), or undefined. Port 0 always works.
 */
function metricsPortProblem(config: Config): string | undefined {
  if (!config.METRICS_ENABLED || config.METRICS_PORT === 0) return undefined;
  const address = `${config.METRICS_HOST}:${config.METRICS_PORT}`;
  try {
    Deno.listen({ hostname: config.METRICS_HOST, port: config.METRICS_PORT }).close();
    return undefined;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      return `cannot serve metrics on ${address}: the address is already in use (another ` +
        `node's metrics?); choose another --metrics-port`;
    }
    return `cannot serve metrics on ${address}: ${
      error instanceof Error ? error.message : String(error)
    }`;
  }
}

/** Runs `kvstore serve`; resolves to the exit code once the server stopped. */
export async function serve(args: string[], options: StartServerOptions = {}): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(SERVE_USAGE + formatSettingsHelp());
    return 0;
  }
  const config = serveConfig(args);
  if (config === undefined) return 1;
  configureLogging({ level: config.LOG_LEVEL, format: config.LOG_FORMAT });
  const log = getLog("server");
  let server: RunningServer;
  try {
    const metricsProblem = metricsPortProblem(config);
    if (metricsProblem !== undefined) throw new Error(metricsProblem);
    server = await startServer(config, await nodeOptions(config, options));
  } catch (error) {
    let message = error instanceof Error ? error.message : String(error);
    if (error instanceof StoreLockedError) {
      message = `data directory ${config.DATA_DIR} is in use by ${
        describeHolder(await lockHolder(config.DATA_DIR))
      }; stop it or choose another --data-dir`;
    }
    log.fatal("cannot start: {error}", { event: "start_failed", error: message });
    return 1;
  }
  const dataDir = config.DATA_DIR;
  let stopping: Promise<void> | undefined;
  const onSignal = (signal: Deno.Signal) => () => {
    if (stopping !== undefined) {
      log.error("second {signal} while stopping: exiting now", { signal });
      Deno.exit(1);
    }
    log.info("{signal} received: stopping gracefully", { event: "signal", signal });
    stopping = server.close();
    // Awaited below; marked handled here so a failure is reported there, not as uncaught.
    stopping.catch(() => {});
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  const handlers = signals.map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
  // After the handlers: a signal that arrives while this file is written stops the server
  // gracefully instead of killing it (the test that sends SIGTERM right after the first OK saw it).
  try {
    await writeRunningFile(dataDir, formatHostPort({ host: server.host, port: server.port }));
  } catch (error) {
    log.warn("cannot write {file}: {error}; other commands will not say which node runs here", {
      file: `${dataDir}/RUNNING.json`,
      error: String(error),
    });
  }
  try {
    await server.closed;
    await stopping;
    await removeRunningFile(dataDir);
    return 0;
  } catch (error) {
    log.error("stopping failed: {error}", { error: String(error) });
    return 1;
  } finally {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  }
}
