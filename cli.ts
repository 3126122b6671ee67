/**
 * The one kvstore executable: `kvstore serve` runs a node; the other commands talk to one or
 * look at a data directory. `kvstore --help` lists them; `kvstore <command> --help` tells one.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CLIENT_COMMANDS, optionErrorText, runClientCommand } from "./src/cli/client_commands.ts";
import { COMMAND_NAMES, commandHelp, topLevelHelp } from "./src/cli/help.ts";
import { describeHolder, lockHolder } from "./src/cli/lock_holder.ts";
import { versionText } from "./src/version.ts";
import { writeAllSync } from "./src/write_all.ts";

/** Parses the options of a local command (`repair`, `inspect`); prints the problem on failure. */
function localOptions<T extends Record<string, { type: "string" | "boolean" }>>(
  command: string,
  args: string[],
  options: T,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    console.error(`kvstore ${command}: ${optionErrorText(error, command)}`);
    return undefined;
  }
}

/** `kvstore repair --data-dir D [--yes]`. */
async function repair(args: string[]): Promise<number> {
  const values = localOptions("repair", args, {
    "data-dir": { type: "string" },
    yes: { type: "boolean" },
  });
  if (values === undefined) return 2;
  const dir = values["data-dir"];
  if (dir === undefined) {
    console.error("kvstore repair: --data-dir <dir> is required (see kvstore repair --help)");
    return 2;
  }
  // Loaded on demand: the storage engine (and its npm logger) is not needed by other commands.
  const { repairStore, StoreLockedError } = await import("./src/storage/mod.ts");
  let report;
  try {
    report = await repairStore(dir, {
      apply: values.yes === true,
      report: (action) =>
        console.log(
          `${
            values.yes ? "truncating" : "would truncate"
          } ${action.path} at byte ${action.offset}: ` +
            `${action.lostBytes} bytes (every record from there to the end of that file) are ` +
            `lost (${action.reason})`,
        ),
    });
  } catch (error) {
    if (error instanceof StoreLockedError) {
      console.error(
        `kvstore repair: ${dir} is in use by ${describeHolder(await lockHolder(dir))}; stop it ` +
          `first (a running node's log is not repaired under it; kvstore inspect --data-dir ` +
          `${dir} looks without stopping it)`,
      );
      return 1;
    }
    if (error instanceof Deno.errors.NotFound) {
      console.error(`kvstore repair: ${dir} does not exist`);
      return 1;
    }
    throw error;
  }
  if (report.healthy) {
    console.log(
      report.actions.length === 0 ? `${dir}: no damage found` : `${dir}: repaired; it opens`,
    );
    return 0;
  }
  if (!values.yes) console.log("run again with --yes to truncate");
  return 1;
}

/** `kvstore inspect --data-dir D [--json] [--keys]`: read-only. */
async function inspect(args: string[]): Promise<number> {
  const values = localOptions("inspect", args, {
    "data-dir": { type: "string" },
    json: { type: "boolean" },
    keys: { type: "boolean" },
  });
  if (values === undefined) return 2;
  const dir = values["data-dir"];
  if (dir === undefined) {
    console.error("kvstore inspect: --data-dir <dir> is required (see kvstore inspect --help)");
    return 2;
  }
  const { inspectDataDir, formatInspectReport } = await import("./src/cli/inspect.ts");
  let report;
  try {
    report = await inspectDataDir(dir, { keys: values.keys === true });
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "no such directory"
      : error instanceof Error
      ? error.message
      : String(error);
    console.error(`kvstore inspect: cannot read ${dir}: ${reason}`);
    return 1;
  }
  const strict = new TextDecoder("utf-8", { fatal: true });
  const keyText = (key: Uint8Array): { key: string } | { key_base64: string } => {
    try {
      return { key: strict.decode(key) };
    } catch {
      return { key_base64: btoa(String.fromCharCode(...key)) };
    }
  };
  const { keys, ...summary } = report;
  if (values.json) {
    console.log(JSON.stringify(summary));
    for (const key of keys ?? []) console.log(JSON.stringify(keyText(key)));
  } else {
    writeAllSync(Deno.stdout, new TextEncoder().encode(formatInspectReport(report)));
    for (const key of keys ?? []) {
      const text = keyText(key);
      console.log("key" in text ? text.key : `(base64) ${text.key_base64}`);
    }
  }
  return report.healthy ? 0 : 1;
}

/** Runs the command line and resolves to the process exit code. */
export async function main(args: string[]): Promise<number> {
  if (args.length === 0 || args[0] === "--help" || args[0] === "-h") {
    console.log(topLevelHelp());
    return 0;
  }
  if (args[0] === "help") {
    const name = args[1];
    if (name === undefined) {
      console.log(topLevelHelp());
      return 0;
    }
    if (name === "serve") return await main(["serve", "--help"]);
    if (!COMMAND_NAMES.includes(name)) {
      console.error(`kvstore help: no command "${name}" (see kvstore --help)`);
      return 1;
    }
    console.log(commandHelp(name));
    return 0;
  }
  if (args[0] === "--version" || args[0] === "-V") {
    console.log(versionText());
    return 0;
  }
  if (args[0] === "cluster" || args[0] === "switchover") {
    if (args.includes("--help") || args.includes("-h")) {
      console.log(commandHelp(args[0]));
      return 0;
    }
    // Loaded on demand: only these read etcd.
    const { clusterCommand, switchoverCommand } = await import("./src/cli/cluster_commands.ts");
    return args[0] === "cluster"
      ? await clusterCommand(args.slice(1))
      : await switchoverCommand(args.slice(1));
  }
  if (args[0] === "repair" || args[0] === "inspect") {
    if (args.includes("--help") || args.includes("-h")) {
      console.log(commandHelp(args[0]));
      return 0;
    }
    return args[0] === "repair" ? await repair(args.slice(1)) : await inspect(args.slice(1));
  }
  // The command is the first word that names one, so options may come before it (the spec's
  // `client_cli --port 5556 read mykey`).
  const index = args.findIndex((arg) => arg === "serve" || CLIENT_COMMANDS.has(arg));
  if (index === -1) {
    console.error(
      `kvstore: no known command in "${args.join(" ")}"; the commands are ` +
        `${COMMAND_NAMES.join(", ")} (see kvstore --help)`,
    );
    return 1;
  }
  const rest = args.toSpliced(index, 1);
  if (args[index] !== "serve") return await runClientCommand(args[index], rest);
  // Loaded on demand, like repair: only serve needs the server (and its npm logger).
  const { serve } = await import("./src/cli/serve.ts");
  return await serve(rest);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
