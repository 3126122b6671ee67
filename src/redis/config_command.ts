/**
 * `CONFIG GET parameter [parameter ...]`, as Redis 7 answers it: each parameter is a name or a
 * glob pattern (`*`, `?`, `[...]`, matched without regard to case); the reply is a map (RESP2: a
 * flat array) of every parameter matched, once each. A name without glob characters is echoed as
 * the client wrote it (`CONFIG GET MAXCLIENTS` answers `MAXCLIENTS`), a pattern's matches under
 * their own names, as Redis does. The order of the entries is this module's (Redis's is its hash
 * table's, which changes from one start to the next).
 *
 * The parameters are kvstore's settings by flag name (`max-request-bytes`; a token is never sent
 * back, only whether one is set) and the Redis names clients and tools ask for, with kvstore's
 * values: `maxclients` (MAX_CONNECTIONS), `maxmemory-clients` (MAX_CLIENT_MEMORY_BYTES, which is
 * what Redis's parameter bounds: all connections' buffers together; Redis's default is 0, no
 * bound), `databases` (1), `save` (empty: no snapshots), `appendonly` (`yes`: kvstore's log is
 * always on) and `appendfsync` (FSYNC). Settings are set by flags and environment only: `CONFIG
 * SET`, `RESETSTAT` and `REWRITE` answer an error that says so. Works in the text protocol too
 * (names and values on one line).
 *
 * @module
 */
import { describeSettings, flagName, type SettingName, SETTINGS } from "../config.ts";
import type { Reply, ReplyWriter } from "../protocol/mod.ts";
import type { CommandContext, CommandSpec, ServerNode } from "../server/hooks.ts";
import { argText } from "./arguments.ts";
import { helpReply } from "./connection_commands.ts";
import { globMatches } from "./glob.ts";
import { containerCommand } from "./subcommands.ts";

/** kvstore's answer to the `CONFIG` subcommands that change things. */
const READ_ONLY_CONFIG =
  "only CONFIG GET <pattern> is supported; settings are set by flags or environment";

/** The Redis parameter names kvstore answers, with their values on `node`. */
function redisParameters(node: ServerNode): [string, string][] {
  return [
    ["save", ""],
    ["appendonly", "yes"],
    ["appendfsync", node.config.FSYNC],
    ["maxclients", String(node.config.MAX_CONNECTIONS)],
    ["maxmemory-clients", String(node.config.MAX_CLIENT_MEMORY_BYTES)],
    ["databases", "1"],
  ];
}

/** Every parameter `CONFIG GET` knows on `node`, by lower-case name, with its value. */
function parameters(node: ServerNode): Map<string, string> {
  const all = new Map<string, string>();
  for (const row of describeSettings()) {
    const value = String(node.config[row.name as SettingName]);
    // A token is never sent back: say only whether one is set.
    all.set(
      flagName(row.name),
      SETTINGS[row.name].secret && value !== "" ? "(set, hidden)" : value,
    );
  }
  for (const [name, value] of redisParameters(node)) if (!all.has(name)) all.set(name, value);
  return all;
}

/** Whether a `CONFIG GET` argument is a glob pattern (Redis: it holds `[`, `*` or `?`). */
function isPattern(text: string): boolean {
  return /[[*?]/.test(text);
}

/** `CONFIG GET parameter...`: the parameters matched, each once, as a map. */
function configGet(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  const all = parameters(ctx.node);
  /** Matched parameters by lower-case name: the name to answer with, and the value. */
  const found = new Map<string, [string, string]>();
  for (const arg of args) {
    const given = argText(arg);
    if (!isPattern(given)) {
      const name = given.toLowerCase();
      const value = all.get(name);
      if (value !== undefined && !found.has(name)) found.set(name, [given, value]);
      continue;
    }
    const pattern = given.toLowerCase();
    for (const [name, value] of all) {
      if (!found.has(name) && globMatches(pattern, name)) found.set(name, [name, value]);
    }
  }
  if (!out.resp) {
    // The text protocol: names and values on one line, separated by spaces.
    out.strings([...found.values()].flat());
    return;
  }
  const text = (value: string): Reply => ({
    type: "value",
    value: new TextEncoder().encode(value),
  });
  out.reply({
    type: "map",
    entries: [...found.values()].map(([name, value]): [Reply, Reply] => [text(name), text(value)]),
  });
}

const CONFIG_HELP = [
  "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "GET <pattern>",
  "    Return parameters matching the glob-like <pattern> and their values.",
  "HELP",
  "    Prints this help.",
];

function readOnly(_args: Uint8Array[], out: ReplyWriter): void {
  out.error(READ_ONLY_CONFIG);
}

/** `CONFIG GET|SET|RESETSTAT|REWRITE|HELP`. */
export const CONFIG_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  [
    "CONFIG",
    containerCommand("CONFIG", {
      GET: { minArgs: 1, maxArgs: Infinity, handler: configGet },
      SET: { minArgs: 0, maxArgs: Infinity, handler: readOnly },
      RESETSTAT: { minArgs: 0, maxArgs: Infinity, handler: readOnly },
      REWRITE: { minArgs: 0, maxArgs: Infinity, handler: readOnly },
      HELP: { minArgs: 0, maxArgs: 0, handler: (_args, out) => out.reply(helpReply(CONFIG_HELP)) },
    }),
  ],
]);
