/**
 * Redis's connection commands, as Redis 7 answers them: `HELLO [2|3] [AUTH user pass] [SETNAME
 * name]` (RESP3 from then on when the client asks for 3), `CLIENT ID|SETNAME|GETNAME|LIST|INFO|
 * SETINFO|KILL|HELP`, `SELECT 0` (kvstore has one database: any other index gets Redis's
 * `DB index is out of range`, which every client library surfaces), `QUIT`, `RESET`, `TIME`, `ECHO`,
 * `PING [message]` and `INFO [section ...]`. They work in the text protocol too (one line each).
 *
 * Authentication stays kvstore's tokens: `HELLO ... AUTH <user> <pass>` runs the node's `AUTH`
 * command with the same words (`AUTH default <token>`), so its limits and delays apply. `CLIENT
 * KILL` of a connection that may run admin commands (a master's replication stream, a connection
 * that proved the replication token) needs a connection that may run them too: a client holding
 * only the client token cannot cut a replica off its master.
 *
 * @module
 */
import { type Reply, ReplyWriter, SYNTAX_ERROR } from "../protocol/mod.ts";
import type {
  CommandContext,
  CommandSpec,
  ConnectionInfo,
  ConnectionType,
  ServerNode,
} from "../server/hooks.ts";
import { REDIS_COMPATIBLE_VERSION } from "../server/info.ts";
import { argText, parseInt32, parseLongLong, upperWord } from "./arguments.ts";
import { commandCommand } from "./command_docs.ts";
import { containerCommand } from "./subcommands.ts";

/** Redis's refusal of `HELLO` without `AUTH` on a connection that has not authenticated. */
export const HELLO_NOAUTH_MESSAGE = "HELLO must be called with the client already " +
  "authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate " +
  "the client and select the RESP protocol version at the same time";

/** Redis's refusal of a client name (or library name) with spaces or other special bytes. */
const NAME_REFUSED = "cannot contain spaces, newlines or special characters.";

/** Checks of whether a connection may run admin commands ask the gates about this spec. */
const ADMIN_PROBE: CommandSpec = { minArgs: 0, maxArgs: 0, admin: true, handler: () => {} };

/** Redis's rule for client names: printable ASCII without spaces (`!` to `~`). */
function validName(bytes: Uint8Array): boolean {
  for (const byte of bytes) if (byte < 0x21 || byte > 0x7e) return false;
  return true;
}

/** `PING [message]`: `PONG`, or the message as a bulk string. */
function ping(args: Uint8Array[], out: ReplyWriter): void {
  if (args.length === 0) out.status("PONG");
  else out.value(args[0]);
}

/** `TIME`: seconds and microseconds of this node's clock, as two bulk strings. */
function time(_args: Uint8Array[], out: ReplyWriter): void {
  const micros = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  out.reply({
    type: "array",
    items: [
      { type: "value", value: new TextEncoder().encode(String(Math.floor(micros / 1e6))) },
      { type: "value", value: new TextEncoder().encode(String(micros % 1e6)) },
    ],
  });
}

/** `SELECT index`: kvstore has one database, 0. */
function select(args: Uint8Array[], out: ReplyWriter): void {
  const index = parseInt32(args[0]);
  if (typeof index === "string") out.error(index);
  else if (index !== 0) out.error("DB index is out of range");
  else out.ok();
}

function quit(_args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  out.ok();
  ctx.closeAfterReply();
}

/** `RESET`: RESP2, no name, no transaction or watched keys, and (with a token) unauthenticated. */
function reset(_args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  ctx.node.resetConnection(ctx.connection);
  out.status("RESET");
}

/** `INFO [section ...]`: a RESP3 verbatim string (RESP2: a bulk string). */
function info(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  const sections = args.map(argText);
  out.verbatim(ctx.node.info(sections, ctx.framing === "resp" ? "\r\n" : "\n"));
}

/** The `HELLO` reply: Redis's seven fields (`server` is `redis`: clients compare it). */
function helloReply(node: ServerNode, connection: ConnectionInfo): Reply {
  const text = (value: string): Reply => ({
    type: "value",
    value: new TextEncoder().encode(value),
  });
  return {
    type: "map",
    entries: [
      [text("server"), text("redis")],
      [text("version"), text(REDIS_COMPATIBLE_VERSION)],
      [text("proto"), { type: "integer", value: connection.protocol }],
      [text("id"), { type: "integer", value: connection.id }],
      [text("mode"), text("standalone")],
      [text("role"), text(node.replica ? "replica" : "master")],
      [text("modules"), { type: "array", items: [] }],
    ],
  };
}

/**
 * Runs the node's `AUTH` with `words` for `HELLO`: undefined when it accepted them, else its
 * refusal (a reply, or a promise of one when a refusal is delayed).
 */
function authenticate(
  words: Uint8Array[],
  out: ReplyWriter,
  ctx: CommandContext,
): Reply | Promise<Reply> | undefined {
  const auth = ctx.node.command("AUTH");
  // No AUTH at all (a node without the auth extension): like Redis's passwordless default user.
  if (auth === undefined) return undefined;
  const scratch = new ReplyWriter(64);
  scratch.resp = out.resp;
  const later = auth.handler(words, scratch, ctx);
  if (later !== undefined) return later;
  const reply = scratch.bytes;
  const accepted = out.resp ? "+OK\r\n" : "OK\n";
  if (new TextDecoder().decode(reply) === accepted) return undefined;
  return { type: "raw", bytes: reply.slice() };
}

/** `HELLO [protover [AUTH user pass] [SETNAME name]]`. */
function hello(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext) {
  const connection = ctx.connection;
  let protocol = connection.protocol;
  let next = 0;
  if (args.length > 0) {
    const version = parseLongLong(args[0]);
    if (version === undefined) {
      out.error("Protocol version is not an integer or out of range");
      return;
    }
    if (version !== 2n && version !== 3n) {
      out.error("unsupported protocol version", "NOPROTO");
      return;
    }
    protocol = version === 2n ? 2 : 3;
    next = 1;
  }
  let credentials: Uint8Array[] | undefined;
  let name: Uint8Array | undefined;
  for (let i = next; i < args.length; i++) {
    const more = args.length - 1 - i;
    const option = upperWord(args[i]);
    if (option === "AUTH" && more >= 2) {
      credentials = [args[i + 1], args[i + 2]];
      i += 2;
    } else if (option === "SETNAME" && more >= 1) {
      name = args[i + 1];
      if (!validName(name)) {
        out.error(`Client names ${NAME_REFUSED}`);
        return;
      }
      i++;
    } else {
      out.error(`Syntax error in HELLO option '${argText(args[i])}'`);
      return;
    }
  }
  const finish = (): Reply => {
    if (!connection.authenticated) {
      return { type: "error", code: "NOAUTH", message: HELLO_NOAUTH_MESSAGE };
    }
    if (name !== undefined) connection.name = argText(name);
    connection.protocol = protocol;
    return helloReply(ctx.node, connection);
  };
  const refused = credentials === undefined ? undefined : authenticate(credentials, out, ctx);
  if (refused instanceof Promise) return refused;
  if (refused !== undefined) {
    out.reply(refused);
    return;
  }
  const reply = finish();
  // The reply already speaks the protocol it switched to, as Redis's does.
  out.resp3 = out.resp && connection.protocol === 3;
  out.reply(reply);
}

/** Redis's client types, by the names `CLIENT LIST/KILL TYPE` take. */
function clientType(word: Uint8Array): ConnectionType | "replica" | "pubsub" | undefined {
  switch (upperWord(word)) {
    case "NORMAL":
      return "normal";
    case "MASTER":
      return "master";
    case "REPLICA":
    case "SLAVE":
      return "replica";
    case "PUBSUB":
      return "pubsub";
    default:
      return undefined;
  }
}

/** One line of `CLIENT LIST` / `CLIENT INFO`, in Redis 7's field order (and 7.2's lib fields). */
export function clientLine(connection: ConnectionInfo, nowMs: number): string {
  const input = connection.inputBufferBytes;
  const pending = connection.pendingInputBytes;
  const fields: [string, string | number][] = [
    ["id", connection.id],
    ["addr", connection.peer],
    ["laddr", connection.local],
    ["fd", -1],
    ["name", connection.name],
    ["age", Math.floor((nowMs - connection.createdAtMs) / 1000)],
    ["idle", Math.floor((nowMs - connection.lastActiveMs) / 1000)],
    ["flags", connection.type === "master" ? "M" : "N"],
    ["db", 0],
    ["sub", 0],
    ["psub", 0],
    ["ssub", 0],
    ["multi", -1],
    ["qbuf", pending],
    ["qbuf-free", input - pending],
    ["argv-mem", 0],
    ["multi-mem", 0],
    ["rbs", input],
    ["rbp", input],
    ["obl", 0],
    ["oll", 0],
    ["omem", connection.unsentBytes],
    ["tot-mem", input + connection.unsentBytes],
    ["events", "r"],
    ["cmd", connection.lastCommand === "" ? "NULL" : connection.lastCommand.toLowerCase()],
    ["user", "default"],
    ["redir", -1],
    ["resp", connection.protocol],
    ["lib-name", connection.libName],
    ["lib-ver", connection.libVersion],
  ];
  return fields.map(([key, value]) => `${key}=${value}`).join(" ") + "\n";
}

/** `CLIENT LIST [TYPE type] [ID id ...]`. */
function clientList(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  let type: string | undefined;
  /** Any 64-bit integer, as Redis takes (a connection's id is a safe integer). */
  let ids: Set<bigint> | undefined;
  if (args.length === 2 && upperWord(args[0]) === "TYPE") {
    type = clientType(args[1]);
    if (type === undefined) {
      out.error(`Unknown client type '${argText(args[1])}'`);
      return;
    }
  } else if (args.length >= 2 && upperWord(args[0]) === "ID") {
    ids = new Set();
    for (const word of args.slice(1)) {
      const id = parseLongLong(word);
      if (id === undefined) {
        out.error("Invalid client ID");
        return;
      }
      ids.add(id);
    }
  } else if (args.length !== 0) {
    out.error(SYNTAX_ERROR);
    return;
  }
  const nowMs = Date.now();
  let text = "";
  for (const connection of ctx.node.connections()) {
    if (type !== undefined && connection.type !== type) continue;
    if (ids !== undefined && !ids.has(BigInt(connection.id))) continue;
    text += clientLine(connection, nowMs);
  }
  out.verbatim(text);
}

/** What `CLIENT KILL` matches. */
interface KillFilter {
  /** 1 to 2^63 - 1, as Redis takes (a connection's id is a safe integer). */
  id?: bigint;
  type?: string;
  addr?: string;
  laddr?: string;
  skipMe: boolean;
}

/** Parses the new form `CLIENT KILL <option> <value> ...`; a string is the error to send. */
function killFilter(args: Uint8Array[]): KillFilter | string {
  const filter: KillFilter = { skipMe: true };
  for (let i = 0; i < args.length; i += 2) {
    if (i + 1 >= args.length) return SYNTAX_ERROR;
    const value = args[i + 1];
    switch (upperWord(args[i])) {
      case "ID": {
        const id = parseLongLong(value);
        if (id === undefined || id < 1n) return "client-id should be greater than 0";
        filter.id = id;
        break;
      }
      case "TYPE": {
        const type = clientType(value);
        if (type === undefined) return `Unknown client type '${argText(value)}'`;
        filter.type = type;
        break;
      }
      case "ADDR":
        filter.addr = argText(value);
        break;
      case "LADDR":
        filter.laddr = argText(value);
        break;
      case "USER":
        if (argText(value) !== "default") return `No such user '${argText(value)}'`;
        break;
      case "SKIPME": {
        const answer = upperWord(value);
        if (answer !== "YES" && answer !== "NO") return SYNTAX_ERROR;
        filter.skipMe = answer === "YES";
        break;
      }
      default:
        return SYNTAX_ERROR;
    }
  }
  return filter;
}

/**
 * `CLIENT KILL addr` (old form: `OK`, or `No such client`) or `CLIENT KILL <option> <value> ...`
 * (the number killed). Killing a connection that may run admin commands needs a caller that may
 * too: otherwise nothing is killed and the reply is a `NOPERM` error.
 */
function clientKill(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  const oldForm = args.length === 1;
  const filter = oldForm ? { addr: argText(args[0]), skipMe: false } : killFilter(args);
  if (typeof filter === "string") {
    out.error(filter);
    return;
  }
  const self = ctx.connection;
  const node = ctx.node;
  const matched: ConnectionInfo[] = [];
  for (const connection of node.connections()) {
    if (filter.addr !== undefined && connection.peer !== filter.addr) continue;
    if (filter.laddr !== undefined && connection.local !== filter.laddr) continue;
    if (filter.type !== undefined && connection.type !== filter.type) continue;
    if (filter.id !== undefined && BigInt(connection.id) !== filter.id) continue;
    if (filter.skipMe && connection === self) continue;
    matched.push(connection);
  }
  const callerIsAdmin = node.authorize("CLIENT", self, ADMIN_PROBE) === undefined;
  if (!callerIsAdmin) {
    const guarded = matched.find((connection) =>
      connection !== self && node.authorize("CLIENT", connection, ADMIN_PROBE) === undefined
    );
    if (guarded !== undefined) {
      out.error(
        `CLIENT KILL would close ${guarded.peer}, a connection that holds the replication token` +
          `${guarded.type === "master" ? " (its master's replication stream)" : ""}: that ` +
          `needs the replication token, not the client token; nothing was killed`,
        "NOPERM",
      );
      return;
    }
  }
  for (const connection of matched) {
    if (connection === self) ctx.closeAfterReply();
    else connection.kill();
  }
  if (!oldForm) out.integer(matched.length);
  else if (matched.length === 0) out.error("No such client");
  else out.ok();
}

/** `CLIENT SETINFO LIB-NAME|LIB-VER value` (Redis 7.2; clients send it when they connect). */
function clientSetInfo(args: Uint8Array[], out: ReplyWriter, ctx: CommandContext): void {
  const attribute = upperWord(args[0]);
  if (attribute !== "LIB-NAME" && attribute !== "LIB-VER") {
    out.error(`Unrecognized option '${argText(args[0])}'`);
    return;
  }
  if (!validName(args[1])) {
    out.error(`${argText(args[0])} ${NAME_REFUSED}`);
    return;
  }
  if (attribute === "LIB-NAME") ctx.connection.libName = argText(args[1]);
  else ctx.connection.libVersion = argText(args[1]);
  out.ok();
}

const CLIENT_HELP = [
  "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "GETNAME",
  "    Return the name of the current connection.",
  "ID",
  "    Return the ID of the current connection.",
  "INFO",
  "    Return information about the current client connection.",
  "KILL <ip:port>",
  "    Kill connection made from <ip:port>.",
  "KILL <option> <value> [<option> <value> [...]]",
  "    Kill connections. Options are:",
  "    * ADDR (<ip:port>|<unixsocket>:0)",
  "      Kill connections made from the specified address",
  "    * LADDR (<ip:port>|<unixsocket>:0)",
  "      Kill connections made to specified local address",
  "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
  "      Kill connections by type.",
  "    * USER <username>",
  "      Kill connections authenticated by <username>.",
  "    * SKIPME (YES|NO)",
  "      Skip killing current connection (default: yes).",
  "LIST [options ...]",
  "    Return information about client connections. Options:",
  "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
  "      Return clients of specified type.",
  "SETNAME <name>",
  "    Assign the name <name> to the current connection.",
  "SETINFO <LIB-NAME|LIB-VER> <value>",
  "    Set the client library name or version (as Redis 7.2).",
  "HELP",
  "    Print this help.",
];

/** Redis's help text: an array of status lines. */
export function helpReply(lines: readonly string[]): Reply {
  return { type: "array", items: lines.map((text) => ({ type: "status", text })) };
}

const client = containerCommand("CLIENT", {
  ID: { minArgs: 0, maxArgs: 0, handler: (_args, out, ctx) => out.integer(ctx.connection.id) },
  GETNAME: {
    minArgs: 0,
    maxArgs: 0,
    handler: (_args, out, ctx) => {
      const name = ctx.connection.name;
      if (name === "") out.notFound();
      else out.textValue(name);
    },
  },
  SETNAME: {
    minArgs: 1,
    maxArgs: 1,
    handler: (args, out, ctx) => {
      if (!validName(args[0])) {
        out.error(`Client names ${NAME_REFUSED}`);
        return;
      }
      ctx.connection.name = argText(args[0]);
      out.ok();
    },
  },
  SETINFO: { minArgs: 2, maxArgs: 2, handler: clientSetInfo },
  LIST: { minArgs: 0, maxArgs: Infinity, handler: clientList },
  INFO: {
    minArgs: 0,
    maxArgs: 0,
    handler: (_args, out, ctx) => out.verbatim(clientLine(ctx.connection, Date.now())),
  },
  KILL: { minArgs: 1, maxArgs: Infinity, handler: clientKill },
  HELP: { minArgs: 0, maxArgs: 0, handler: (_args, out) => out.reply(helpReply(CLIENT_HELP)) },
});

/** Redis's connection commands, by upper-case name. */
export const CONNECTION_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map<string, CommandSpec>([
  ["HELLO", { minArgs: 0, maxArgs: Infinity, handler: hello }],
  ["CLIENT", client],
  ["PING", { minArgs: 0, maxArgs: 1, handler: ping }],
  ["ECHO", { minArgs: 1, maxArgs: 1, handler: (args, out) => out.value(args[0]) }],
  ["TIME", { minArgs: 0, maxArgs: 0, handler: time }],
  ["SELECT", { minArgs: 1, maxArgs: 1, handler: select }],
  ["QUIT", { transactionControl: true, minArgs: 0, maxArgs: Infinity, handler: quit }],
  ["RESET", { transactionControl: true, minArgs: 0, maxArgs: 0, handler: reset }],
  ["INFO", { minArgs: 0, maxArgs: Infinity, handler: info }],
  ["COMMAND", commandCommand],
]);
