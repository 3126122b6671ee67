/**
 * The one kvstore executable: `kvstore serve` runs a node; the other commands talk to one.
 *
 * @module
 */
import { formatSettingsHelp } from "./src/config.ts";
import { VERSION, versionText } from "./src/version.ts";

const USAGE = `kvstore ${VERSION}: a persistent key-value store with master-replica replication

Usage:
  kvstore serve [settings]        start a node (master, or replica with --replica)
  kvstore --version               print the version
  kvstore --help                  print this help
`;

/** Runs the command line and returns the process exit code. */
export function main(args: string[]): number {
  if (args.length === 0 || args[0] === "--help" || args[0] === "-h" || args[0] === "help") {
    console.log(USAGE + formatSettingsHelp());
    return 0;
  }
  if (args[0] === "--version" || args[0] === "-V") {
    console.log(versionText());
    return 0;
  }
  console.error(`kvstore: unknown command "${args[0]}" (see kvstore --help)`);
  return 1;
}

if (import.meta.main) Deno.exit(main(Deno.args));
