/**
 * Container commands (`CLIENT ID`, `COMMAND DOCS`, ...): a table of subcommands, each with its
 * own argument count, answered with Redis's errors (`unknown subcommand 'FOO'. Try CLIENT HELP.`,
 * `wrong number of arguments for 'client|id' command`).
 *
 * @module
 */
import {
  CommandTable,
  type ReplyWriter,
  unknownSubcommandMessage,
  wrongArityMessage,
} from "../protocol/mod.ts";
import type { CommandContext, CommandHandler, CommandSpec } from "../server/hooks.ts";

/** One subcommand: its arguments after the subcommand word, and its handler. */
export interface Subcommand {
  /** Fewest arguments after the subcommand word. */
  minArgs: number;
  /** Most arguments after the subcommand word (`Infinity` for no bound). */
  maxArgs: number;
  /** Runs it with the arguments after the subcommand word. */
  handler: CommandHandler;
}

/**
 * The spec of container `name` (upper case) with `subcommands` (by upper-case name). `extra`
 * sets the container's other flags (`write`, `admin`).
 *
 * @example
 * ```ts
 * import { containerCommand } from "./subcommands.ts";
 * const spec = containerCommand("OBJECT", {
 *   HELP: { minArgs: 0, maxArgs: 0, handler: (_args, out) => out.strings(["OBJECT HELP"]) },
 * });
 * console.log(spec.minArgs); // 1
 * ```
 */
export function containerCommand(
  name: string,
  subcommands: Record<string, Subcommand>,
  extra: Partial<Omit<CommandSpec, "handler" | "minArgs" | "maxArgs">> = {},
): CommandSpec {
  const table = new CommandTable<[string, Subcommand]>(
    Object.entries(subcommands).map(([sub, spec]) => [sub, [`${name}|${sub}`, spec]]),
  );
  return {
    ...extra,
    minArgs: 1,
    maxArgs: Infinity,
    handler: (args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) => {
      const found = table.get(args[0]);
      if (found === undefined) {
        out.error(unknownSubcommandMessage(name, args[0]));
        return;
      }
      const [fullName, sub] = found;
      const rest = args.slice(1);
      if (rest.length < sub.minArgs || rest.length > sub.maxArgs) {
        out.error(wrongArityMessage(fullName));
        return;
      }
      ctx.connection.lastCommand = fullName;
      return sub.handler(rest, out, ctx);
    },
  };
}
