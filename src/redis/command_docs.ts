/**
 * `COMMAND [COUNT|LIST [FILTERBY ...]|INFO name...|DOCS name...|GETKEYS command arg...|HELP]`:
 * what client libraries, proxies and `redis-cli` ask about the commands a server has. Entries
 * are in Redis 7's shape: name, arity, flags, first key, last key, key step, ACL categories,
 * tips, key specs, subcommands. The arity is the node's own (its argument counts); flags, key
 * positions and categories are Redis 7.0.15's for Redis's commands (`command_info.ts`); tips,
 * key specs and subcommands are empty.
 *
 * @module
 */
import { type Reply, type ReplyWriter, SYNTAX_ERROR } from "../protocol/mod.ts";
import type { CommandContext, CommandSpec, ServerNode } from "../server/hooks.ts";
import { argText, upperWord } from "./arguments.ts";
import { commandInfo, keysOf } from "./command_info.ts";
import { globMatches } from "./glob.ts";
import { containerCommand } from "./subcommands.ts";

const encoder = new TextEncoder();

function bulk(text: string): Reply {
  return { type: "value", value: encoder.encode(text) };
}

/** Redis's arity: the words with the name; negative for "at least". */
function arity(spec: CommandSpec): number {
  return spec.maxArgs === spec.minArgs ? spec.minArgs + 1 : -(spec.minArgs + 1);
}

/** The `COMMAND INFO` entry of `name` (upper case). */
function entry(name: string, spec: CommandSpec): Reply {
  const info = commandInfo(name, spec);
  return {
    type: "array",
    items: [
      bulk(name.toLowerCase()),
      { type: "integer", value: arity(spec) },
      { type: "set", items: info.flags.map((text) => ({ type: "status", text })) },
      { type: "integer", value: info.firstKey },
      { type: "integer", value: info.lastKey },
      { type: "integer", value: info.keyStep },
      { type: "set", items: info.categories.map((text) => ({ type: "status", text })) },
      { type: "array", items: [] },
      { type: "array", items: [] },
      { type: "array", items: [] },
    ],
  };
}

/** The node's commands, by upper-case name, in name order. */
function commandsOf(node: ServerNode): [string, CommandSpec][] {
  const found: [string, CommandSpec][] = [];
  for (const name of node.commandNames()) {
    const spec = node.command(name);
    if (spec !== undefined) found.push([name, spec]);
  }
  return found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function info(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  if (args.length === 0) {
    out.reply({ type: "array", items: commandsOf(ctx.node).map(([n, s]) => entry(n, s)) });
    return;
  }
  const items = args.map((word): Reply => {
    const name = argText(word).toUpperCase();
    const spec = ctx.node.command(name);
    return spec === undefined ? { type: "notFound" } : entry(name, spec);
  });
  out.reply({ type: "array", items });
}

/**
 * Whether command `name` (upper case) passes the filter of `COMMAND LIST FILTERBY <by> <value>`,
 * as in Redis 7: `MODULE` (kvstore loads none: no command), `ACLCAT` (a category named without
 * its `@`, in any case), `PATTERN` (a glob over the lower-case name, in any case).
 */
function passes(name: string, spec: CommandSpec, by: string, value: string): boolean {
  if (by === "ACLCAT") {
    return commandInfo(name, spec).categories.includes(`@${value.toLowerCase()}`);
  }
  if (by === "PATTERN") return globMatches(value.toLowerCase(), name.toLowerCase());
  return false;
}

/** `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]`. */
function list(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  let commands = commandsOf(ctx.node);
  if (args.length > 0) {
    // Redis takes exactly one FILTERBY and answers a syntax error for anything else.
    const by = args.length === 3 ? upperWord(args[1]) : "";
    if (upperWord(args[0]) !== "FILTERBY" || !["MODULE", "ACLCAT", "PATTERN"].includes(by)) {
      out.error(SYNTAX_ERROR);
      return;
    }
    const value = argText(args[2]);
    commands = commands.filter(([name, spec]) => passes(name, spec, by, value));
  }
  out.reply({ type: "array", items: commands.map(([name]) => bulk(name.toLowerCase())) });
}

/**
 * `COMMAND GETKEYS command arg...`: the keys of that call, from the command's key positions, with
 * Redis 7's errors.
 */
function getkeys(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  const name = argText(args[0]).toUpperCase();
  const spec = ctx.node.command(name);
  if (spec === undefined) return out.error("Invalid command specified");
  const info = commandInfo(name, spec);
  if (info.firstKey === 0) return out.error("The command has no key arguments");
  const words = args.length;
  const expected = arity(spec);
  if ((expected > 0 && words !== expected) || words < -expected) {
    return out.error("Invalid number of arguments specified for command");
  }
  const keys = keysOf(info, args);
  if (keys.length === 0) return out.error("Invalid arguments specified for command");
  out.reply({ type: "array", items: keys.map((value) => ({ type: "value", value })) });
}

/** `COMMAND DOCS`: kvstore keeps no documentation per command yet; an empty map, as for names Redis does not know. */
function docs(_args: Uint8Array[], out: ReplyWriter): void {
  out.reply({ type: "map", entries: [] });
}

const HELP = [
  "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "(no subcommand)",
  "    Return details about all Redis commands.",
  "COUNT",
  "    Return the total number of commands in this Redis server.",
  "LIST",
  "    Return a list of all commands in this Redis server.",
  "INFO [<command-name> ...]",
  "    Return details about multiple Redis commands.",
  "    If no command names are given, documentation details for all",
  "    commands are returned.",
  "DOCS [<command-name> ...]",
  "    Return documentation details about multiple Redis commands.",
  "    If no command names are given, documentation details for all",
  "    commands are returned.",
  "GETKEYS <full-command>",
  "    Return the keys from a full Redis command.",
  "HELP",
  "    Prints this help.",
];

const subcommands = containerCommand("COMMAND", {
  COUNT: {
    minArgs: 0,
    maxArgs: 0,
    handler: (_args, out, ctx) => out.integer(commandsOf(ctx.node).length),
  },
  LIST: { minArgs: 0, maxArgs: Infinity, handler: list },
  INFO: { minArgs: 0, maxArgs: Infinity, handler: info },
  DOCS: { minArgs: 0, maxArgs: Infinity, handler: docs },
  GETKEYS: { minArgs: 2, maxArgs: Infinity, handler: getkeys },
  HELP: {
    minArgs: 0,
    maxArgs: 0,
    handler: (_args, out) =>
      out.reply({ type: "array", items: HELP.map((text) => ({ type: "status", text })) }),
  },
});

/** `COMMAND [subcommand ...]`. */
export const commandCommand: CommandSpec = {
  minArgs: 0,
  maxArgs: Infinity,
  handler: (args, out, ctx) => {
    if (args.length === 0) return info([], out, ctx);
    return subcommands.handler(args, out, ctx);
  },
};
