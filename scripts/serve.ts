/**
 * `deno task serve [settings]`: runs `kvstore serve` with permissions that follow its settings.
 *
 * Deno's permissions are fixed before a program starts, and a task's command line cannot look
 * at the `--data-dir` given after it. So this launcher reads the settings as `kvstore serve`
 * will (flags, then `KVSTORE_*` variables, then defaults) and starts the server in a child
 * process allowed to read and write only its data directory, read only the files its settings
 * name (TLS certificate and key, token files, the replicas' CA), use the network, and read the
 * `KVSTORE_*` variables. The child runs in its own session; SIGINT and SIGTERM reach it once,
 * through this launcher, and the launcher exits with its status.
 *
 * @module
 */
import { ConfigError, envName, loadConfig, type SettingName, SETTINGS } from "../src/config.ts";

/** The settings that name a file the server reads. */
const READ_FILES: readonly SettingName[] = [
  "TLS_CERT",
  "TLS_KEY",
  "AUTH_TOKEN_FILE",
  "REPLICATION_TOKEN_FILE",
  "REPLICATION_TLS_CA",
];

/** The `deno run` permission flags a node with these `serve` arguments needs. */
export function servePermissions(args: string[], env: Record<string, string>): string[] {
  const { config } = loadConfig({ args, env });
  const files = READ_FILES.map((name) => String(config[name])).filter((path) => path !== "");
  for (const path of [config.DATA_DIR, ...files]) {
    // Deno's permission lists are comma-separated: such a path cannot be granted alone.
    if (path.includes(",")) {
      throw new ConfigError(
        `"${path}" has a comma, which deno task serve cannot grant; rename it, or run ` +
          "deno run -A cli.ts serve (or the compiled kvstore) instead",
      );
    }
  }
  return [
    "--allow-net",
    `--allow-read=${[config.DATA_DIR, ...files].join(",")}`,
    `--allow-write=${config.DATA_DIR}`,
    "--allow-env=KVSTORE_*",
  ];
}

/** The `KVSTORE_*` variables that are set (read one by one: only they are allowed). */
function settingsEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const value = Deno.env.get(envName(name));
    if (value !== undefined) env[envName(name)] = value;
  }
  return env;
}

async function main(args: string[]): Promise<number> {
  const cli = new URL("../cli.ts", import.meta.url).pathname;
  let permissions: string[] = ["--allow-net", "--allow-env=KVSTORE_*"];
  if (!args.includes("--help") && !args.includes("-h")) {
    try {
      permissions = servePermissions(args, settingsEnvironment());
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      console.error(`kvstore serve: ${error.message}`);
      return 1;
    }
  }
  const child = new Deno.Command("deno", {
    args: ["run", ...permissions, cli, "serve", ...args],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
    // Its own session: a terminal's Ctrl-C reaches the launcher only, which passes it on once.
    detached: true,
  }).spawn();
  const forward = (signal: Deno.Signal) => () => {
    try {
      child.kill(signal);
    } catch {
      // It exited meanwhile.
    }
  };
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const handlers = signals.map((signal) => [signal, forward(signal)] as const);
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
  try {
    return (await child.status).code;
  } finally {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
