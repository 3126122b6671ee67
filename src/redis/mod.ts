/**
 * Redis's commands that kvstore answers as Redis 7 does, reply for reply: the connection
 * commands (`HELLO`, `CLIENT`, `SELECT`, `PING`, `INFO`, `COMMAND`, ...) here, and the data
 * commands beside them. The server registers {@link REDIS_COMMANDS} after its built-in ones.
 *
 * A command writes its reply through the `ReplyWriter` it is handed: it declares the reply's
 * shape once (`mapHeader`, `setHeader`, `double`, `boolean`, `verbatim`, `nullArray`, or a
 * `Reply` held as data) and the writer encodes it in the connection's protocol, RESP2 or RESP3
 * (or the text protocol's one line).
 *
 * @module
 */
import type { CommandSpec } from "../server/hooks.ts";
import { CONFIG_COMMANDS } from "./config_command.ts";
import { CONNECTION_COMMANDS } from "./connection_commands.ts";
import { COUNTER_COMMANDS } from "./counter_commands.ts";
import { EXPIRY_COMMANDS } from "./expiry_commands.ts";
import { KEYSPACE_COMMANDS } from "./keyspace_commands.ts";
import { LCS_COMMANDS } from "./lcs_command.ts";
import { STRING_COMMANDS } from "./string_commands.ts";
import { TRANSACTION_COMMANDS } from "./transactions.ts";

export { argText, parseInteger, upperWord } from "./arguments.ts";
export { containerCommand, type Subcommand } from "./subcommands.ts";
export { clientLine, HELLO_NOAUTH_MESSAGE, helpReply } from "./connection_commands.ts";

/** Every Redis command of this module, by upper-case name. */
export const REDIS_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map([
  ...CONNECTION_COMMANDS,
  ...CONFIG_COMMANDS,
  ...TRANSACTION_COMMANDS,
  ...KEYSPACE_COMMANDS,
  ...STRING_COMMANDS,
  ...COUNTER_COMMANDS,
  ...EXPIRY_COMMANDS,
  ...LCS_COMMANDS,
]);
