/**
 * The one kvstore executable: `kvstore serve` runs a node; the other commands talk to one.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  CLIENT_COMMANDS,
  CLIENT_OPTIONS_USAGE,
  CLIENT_USAGE,
  runClientCommand,
} from "./src/cli/client_commands.ts";
import { formatSettingsHelp } from "./src/config.ts";
import { VERSION, versionText } from "./src/version.ts";

const USAGE = `kvstore ${VERSION}: a persistent key-value store with master-replica replication

Usage:
  kvstore serve [settings]                  start a node (master, or replica with --replica)
${CLIENT_USAGE}
  kvstore repair --data-dir D [--yes]       truncate a damaged log at its first bad record
                                            (says what is lost; changes nothing without --yes)
  kvstore --version                         print the version
  kvstore --help                            print this help

${CLIENT_OPTIONS_USAGE}`;

/** `kvstore repair --data-dir D [--yes]`. */
async function repair(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { "data-dir": { type: "string" }, yes: { type: "boolean", default: false } },
  });
  const dir = values["data-dir"];
  if (dir === undefined) {
    console.error("kvstore repair: --data-dir D is required");
    return 2;
  }
  // Loaded on demand: the storage engine (and its npm logger) is not needed by other commands.
  const { repairStore } = await import("./src/storage/mod.ts");
  const report = await repairStore(dir, {
    apply: values.yes,
    report: (action) =>
      console.log(
        `${
          values.yes ? "truncating" : "would truncate"
        } ${action.path} at byte ${action.offset}: ` +
          `${action.lostBytes} bytes (every record from there to the end of that file) are ` +
          `lost (${action.reason})`,
      ),
  });
  if (report.healthy) {
    console.log(
      report.actions.length === 0 ? `${dir}: no damage found` : `${dir}: repaired; it opens`,
    );
    return 0;
  }
  if (!values.yes) console.log("run again with --yes to truncate");
  return 1;
}

/** Runs the command line and resolves to the process exit code. */
export async function main(args: string[]): Promise<number> {
  if (args[0] === "repair") return await repair(args.slice(1));
  if (args.length === 0 || args[0] === "--help" || args[0] === "-h" || args[0] === "help") {
    console.log(USAGE + formatSettingsHelp());
    return 0;
  }
  if (args[0] === "--version" || args[0] === "-V") {
    console.log(versionText());
    return 0;
  }
  // The command is the first word that names one, so options may come before it (the spec's
  // `client_cli --port 5556 read mykey`).
  const index = args.findIndex((arg) => arg === "serve" || CLIENT_COMMANDS.has(arg));
  if (index === -1) {
    const known = ["serve", ...CLIENT_COMMANDS, "repair"].join(", ");
    console.error(
      `kvstore: no known command in "${args.join(" ")}"; the commands are ${known} ` +
        `(see kvstore --help)`,
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
