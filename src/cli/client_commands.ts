/**
 * The client commands of the `kvstore` executable: `put`, `read`, `delete`, `readrange`,
 * `batchput`, `info`, `ping`, `backup`, `promote`, `replicas`, each with `--host`/`--port`
 * (before or after the command, so the spec's `client_cli --port 5556 read mykey` works as
 * `kvstore --port 5556 read mykey`) and its own `--help`.
 *
 * Exit status: 0 success, 1 error, 2 not found; messages go to stderr, results to stdout. Errors
 * are told in the command line's words (`--timeout-ms`, `--tls-ca`), not the client library's.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KVClient } from "../client/kv_client.ts";
import type { ReadPreference } from "../client/topology.ts";
import { BackupError } from "../backup/errors.ts";
import { KVAuthError, KVConnectionError, KVError, KVTimeoutError } from "../client/errors.ts";
import { CLI_LIMITS, ConfigError, formatHostPort, parseAddresses } from "../config.ts";
import { resolveToken } from "../security/auth.ts";
import { writeAllSync } from "../write_all.ts";
import { commandHelp } from "./help.ts";

/** Exit status of a client command. */
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_NOT_FOUND = 2;

/** Operand counts of each client command: [fewest, most]. */
const ARITY: Readonly<Record<string, readonly [number, number]>> = {
  put: [1, 2],
  read: [1, 1],
  delete: [1, 1],
  readrange: [2, 2],
  batchput: [2, 2],
  info: [0, 1],
  ping: [0, 0],
  backup: [0, 0],
  promote: [0, 0],
  replicas: [0, 2],
};

/** Names of the client commands. */
export const CLIENT_COMMANDS: ReadonlySet<string> = new Set(Object.keys(ARITY));

/** Options only some commands take: the command words that accept each. */
const COMMAND_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  to: ["backup"],
  "value-file": ["put"],
  x: ["put"],
  json: ["read", "readrange"],
  force: ["replicas"],
  "read-from": ["read", "readrange"],
};

/** Commands that act on one node: they take --host/--port, never --nodes. */
const ONE_NODE_COMMANDS: ReadonlySet<string> = new Set(["backup", "promote", "replicas"]);

/** `--read-from` words and the read preference each means. */
const READ_FROM: Readonly<Record<string, ReadPreference>> = {
  primary: "primary",
  replica: "replica",
  nearest: "nearest",
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

function writeOut(bytes: Uint8Array): void {
  writeAllSync(Deno.stdout, bytes);
}

function fail(message: string, code = EXIT_ERROR): number {
  console.error(`kvstore: ${message}`);
  return code;
}

/** How the command reaches the server, as the user gave it. */
interface Connection {
  host: string;
  port: number;
  /** A cluster's nodes (`--nodes`, `KVSTORE_NODES`): the client finds the master itself. */
  nodes: string[] | undefined;
  /** Where reads go with `nodes` (`--read-from`). */
  readPreference: ReadPreference | undefined;
  timeoutMs: number;
  token: string | undefined;
  /** The replication token (`PROMOTE`, `REPLICAS`): proved, never sent. */
  replicationToken: string | undefined;
  tls: { caCerts?: string[] } | undefined;
  /** The TLS option the user gave (`--tls-ca`, `--tls`, or `KVSTORE_TLS_CA`), for messages. */
  tlsFlag: string | undefined;
}

/**
 * Runs client command `command` with `args` (its operands and options, without the command
 * word); resolves to the exit status.
 */
export async function runClientCommand(command: string, args: string[]): Promise<number> {
  const terminator = args.indexOf("--");
  const optionWords = terminator === -1 ? args : args.slice(0, terminator);
  if (optionWords.includes("--help") || optionWords.includes("-h")) {
    console.log(commandHelp(command));
    return EXIT_OK;
  }
  const line = parseCommandLine(command, args);
  if (typeof line === "string") return fail(line);
  const { values, operands } = line;
  let connection: Connection;
  try {
    connection = await connectionOptions(values);
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
  const problem = connectionProblem(command, values, connection);
  if (problem !== undefined) return fail(problem);
  let value: Uint8Array | string | undefined;
  if (command === "put") {
    try {
      value = await putValue(operands[1], values["value-file"], values.x === true);
    } catch (error) {
      return fail(error instanceof Error ? error.message : String(error));
    }
  }
  const client = newClient(connection);
  try {
    switch (command) {
      case "backup":
        return await backup(client, values.to as string);
      case "put":
        await client.put(operands[0], value as Uint8Array | string);
        console.log("OK");
        return EXIT_OK;
      case "replicas":
        return await replicas(client, connection, operands, values.force === true);
      default:
        return await run(client, command, operands, values.json === true);
    }
  } catch (error) {
    if (error instanceof KVError || error instanceof BackupError) {
      return fail(await userMessage(error, connection));
    }
    throw error;
  } finally {
    await client.close();
  }
}

/** The options of the client commands (`COMMAND_OPTIONS` says which commands take the few). */
const OPTIONS = {
  host: { type: "string" },
  port: { type: "string" },
  "timeout-ms": { type: "string" },
  "auth-token": { type: "string" },
  "auth-token-file": { type: "string" },
  "replication-token": { type: "string" },
  "replication-token-file": { type: "string" },
  "tls-ca": { type: "string" },
  tls: { type: "boolean" },
  to: { type: "string" },
  "value-file": { type: "string" },
  x: { type: "boolean", short: "x" },
  json: { type: "boolean" },
  force: { type: "boolean" },
  nodes: { type: "string" },
  "read-from": { type: "string" },
} as const;

function parseOptions(args: string[]) {
  return parseArgs({ args, allowPositionals: true, strict: true, options: OPTIONS });
}

/** A client command's line: its options and its operands. */
interface CommandLine {
  values: ReturnType<typeof parseOptions>["values"];
  operands: string[];
}

/**
 * Parses a client command's words, checking that the command takes each option given and its
 * number of operands; a string is what is wrong with them.
 */
function parseCommandLine(command: string, args: string[]): CommandLine | string {
  let parsed;
  try {
    parsed = parseOptions(args);
  } catch (error) {
    return `${command}: ${optionErrorText(error, command)}`;
  }
  const values = parsed.values;
  for (const [option, commands] of Object.entries(COMMAND_OPTIONS)) {
    if (values[option as keyof typeof values] !== undefined && !commands.includes(command)) {
      const flag = option.length === 1 ? `-${option}` : `--${option}`;
      return `${command} takes no ${flag} (see kvstore ${command} --help)`;
    }
  }
  const operands = parsed.positionals;
  const [min, max] = ARITY[command];
  const valueElsewhere = command === "put" &&
    (values["value-file"] !== undefined || values.x === true);
  if (
    operands.length < min || operands.length > (valueElsewhere ? 1 : max) ||
    (command === "put" && operands.length === 1 && !valueElsewhere)
  ) {
    return usageLine(command);
  }
  return { values, operands };
}

/** What is wrong with where a command goes (one node or a cluster), or undefined. */
function connectionProblem(
  command: string,
  values: CommandLine["values"],
  connection: Connection,
): string | undefined {
  if (connection.nodes !== undefined && ONE_NODE_COMMANDS.has(command)) {
    return `${command} acts on one node: give it --host and --port, not ${
      values.nodes === undefined ? "KVSTORE_NODES" : "--nodes"
    }`;
  }
  if (connection.readPreference !== undefined && connection.nodes === undefined) {
    return `--read-from chooses among a cluster's nodes: give --nodes (or KVSTORE_NODES) too`;
  }
  if (command === "backup" && values.to === undefined) {
    return "usage: kvstore backup --to <dir> (a new or empty directory)";
  }
  return undefined;
}

/**
 * A `node:util` `parseArgs` error in the command line's words: its own wording ("Unknown option
 * '--frob'. To specify a positional argument ...", "Option '--port <value>' argument missing") is
 * about its parser, not about what the user can do.
 */
export function optionErrorText(error: unknown, command: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const unknown = /Unknown option '([^']+)'/.exec(message)?.[1];
  if (unknown !== undefined) {
    // "-5" is more likely a value than an option: say how to give it.
    return `unknown option ${unknown} (see kvstore ${command} --help${
      unknown.startsWith("--")
        ? ""
        : `; an operand that starts with - goes after --, as in kvstore ${command} mykey -- ${unknown}`
    })`;
  }
  const missing = /Option '(-[^ ']+)(?:, (--?[^ ']+))?[^']*' argument missing/.exec(message);
  if (missing !== undefined && missing !== null) {
    return `${missing[2] ?? missing[1]} needs a value (see kvstore ${command} --help)`;
  }
  return `${message.replace(/\.$/, "")} (see kvstore ${command} --help)`;
}

function usageLine(command: string): string {
  return `usage: kvstore ${command} ${
    ({
      put: "<key> (<value> | - | --value-file <file>)",
      read: "<key> [--json]",
      delete: "<key>",
      readrange: "<start> <end> [--json]",
      batchput: "<k1,k2,...> <v1,v2,...>",
      info: "[section]",
      replicas: "[add|remove|filter <host:port[prefix,...],...>]",
    } as Record<string, string>)[command] ?? ""
  }`.trimEnd() + ` (see kvstore ${command} --help)`;
}

function newClient(connection: Connection, host?: string, port?: number) {
  const { nodes } = connection;
  if (nodes !== undefined && host === undefined) {
    return new KVClient({
      nodes,
      readPreference: connection.readPreference,
      timeoutMs: connection.timeoutMs,
      token: connection.token,
      replicationToken: connection.replicationToken,
      tls: connection.tls,
    });
  }
  return new KVClient({
    host: host ?? connection.host,
    port: port ?? connection.port,
    timeoutMs: connection.timeoutMs,
    token: connection.token,
    replicationToken: connection.replicationToken,
    tls: connection.tls,
  });
}

/**
 * The cluster's nodes from `--nodes h:p,h:p` or, without any of `--nodes`, `--host`, `--port`,
 * from `KVSTORE_NODES`; undefined for one node. `--nodes` with `--host` or `--port` is an error.
 */
function clusterNodes(
  values: { host?: string; port?: string; nodes?: string },
): string[] | undefined {
  if (values.nodes !== undefined && (values.host !== undefined || values.port !== undefined)) {
    throw new Error("give --nodes or --host/--port, not both");
  }
  const text = values.nodes ??
    (values.host === undefined && values.port === undefined
      ? Deno.env.get("KVSTORE_NODES")
      : undefined);
  if (text === undefined) return undefined;
  const where = values.nodes === undefined ? "KVSTORE_NODES" : "--nodes";
  let addresses;
  try {
    addresses = parseAddresses(text, `${where} entry`);
  } catch (error) {
    if (error instanceof ConfigError) throw new Error(error.message);
    throw error;
  }
  if (addresses.length === 0) throw new Error(`${where} is empty: give host:port,host:port`);
  return addresses.map(formatHostPort);
}

/** Credential flags (and their `KVSTORE_*` variables) every command that dials a node takes. */
export interface CredentialFlags {
  "auth-token"?: string;
  "auth-token-file"?: string;
  "replication-token"?: string;
  "replication-token-file"?: string;
  "tls-ca"?: string;
  tls?: boolean;
}

/**
 * The tokens and TLS options of `values`, files read; `tlsFlag` names what asked for TLS (for
 * messages). Throws an Error in the user's words when a file cannot be read.
 */
export async function credentialOptions(values: CredentialFlags): Promise<{
  token: string | undefined;
  replicationToken: string | undefined;
  tls: { caCerts?: string[] } | undefined;
  tlsFlag: string | undefined;
}> {
  const token = await resolveToken(
    "--auth-token",
    values["auth-token"] ?? Deno.env.get("KVSTORE_AUTH_TOKEN") ?? "",
    values["auth-token-file"] ?? Deno.env.get("KVSTORE_AUTH_TOKEN_FILE") ?? "",
  );
  const replicationToken = await resolveToken(
    "--replication-token",
    values["replication-token"] ?? Deno.env.get("KVSTORE_REPLICATION_TOKEN") ?? "",
    values["replication-token-file"] ?? Deno.env.get("KVSTORE_REPLICATION_TOKEN_FILE") ?? "",
  );
  const caFile = values["tls-ca"] ?? Deno.env.get("KVSTORE_TLS_CA");
  let caCerts: string[] | undefined;
  if (caFile !== undefined) {
    try {
      caCerts = [await Deno.readTextFile(caFile)];
    } catch (error) {
      throw new Error(`--tls-ca: cannot read ${caFile}: ${describe(error)}`);
    }
  }
  const tls = caCerts !== undefined || values.tls === true ? { caCerts } : undefined;
  const tlsFlag = values["tls-ca"] !== undefined
    ? "--tls-ca"
    : caFile !== undefined
    ? "KVSTORE_TLS_CA"
    : values.tls === true
    ? "--tls"
    : undefined;
  return { token, replicationToken, tls, tlsFlag };
}

async function connectionOptions(
  values: CredentialFlags & {
    host?: string;
    port?: string;
    "timeout-ms"?: string;
    nodes?: string;
    "read-from"?: string;
  },
): Promise<Connection> {
  const nodes = clusterNodes(values);
  const readFrom = values["read-from"];
  const readPreference = readFrom === undefined ? undefined : READ_FROM[readFrom];
  if (readFrom !== undefined && readPreference === undefined) {
    throw new Error(`--read-from "${readFrom}" is not one of ${Object.keys(READ_FROM).join(", ")}`);
  }
  const host = values.host ?? Deno.env.get("KVSTORE_HOST") ?? "127.0.0.1";
  const portText = values.port ?? Deno.env.get("KVSTORE_PORT") ?? "5555";
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`--port "${portText}" is not a port number (1..65535)`);
  }
  const timeoutText = values["timeout-ms"] ?? "10000";
  const timeoutMs = Number(timeoutText);
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new Error(`--timeout-ms "${timeoutText}" is not a number of milliseconds`);
  }
  const { token, replicationToken, tls, tlsFlag } = await credentialOptions(values);
  return { host, port, nodes, readPreference, timeoutMs, token, replicationToken, tls, tlsFlag };
}

/** The value of `put`: the operand, standard input (`-` or `-x`), or a file. */
async function putValue(
  operand: string | undefined,
  valueFile: string | undefined,
  fromStdin: boolean,
): Promise<Uint8Array | string> {
  const limit = CLI_LIMITS.maxValueInputBytes;
  if (valueFile !== undefined) {
    let size: number;
    try {
      size = (await Deno.stat(valueFile)).size;
    } catch (error) {
      throw new Error(`--value-file: cannot read ${valueFile}: ${describe(error)}`);
    }
    if (size > limit) {
      throw new Error(
        `--value-file ${valueFile} holds ${size} bytes, more than the ${limit} a value may have`,
      );
    }
    return await Deno.readFile(valueFile);
  }
  if (fromStdin || operand === "-") return await readStdin(limit);
  return operand as string;
}

/** All of standard input, refused past `limitBytes` (read in chunks, never past the limit). */
async function readStdin(limitBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of Deno.stdin.readable) {
    total += chunk.length;
    if (total > limitBytes) {
      throw new Error(`standard input holds more than the ${limitBytes} bytes a value may have`);
    }
    chunks.push(chunk);
  }
  const value = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    value.set(chunk, offset);
    offset += chunk.length;
  }
  return value;
}

/**
 * Splits a `batchput` list at its commas: `\,` is a comma inside an item and `\\` a backslash
 * (so an item may end in one); any other backslash is kept as it is.
 *
 * @example
 * ```ts
 * import { splitCommaList } from "./client_commands.ts";
 * console.log(splitCommaList("a\\,b,c")); // [ "a,b", "c" ]
 * ```
 */
export function splitCommaList(text: string): string[] {
  const items: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    const next = text[i + 1];
    if (char === "\\" && (next === "," || next === "\\")) {
      current += next;
      i++;
    } else if (char === ",") {
      items.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  items.push(current);
  return items;
}

/** A key or value in JSON output: text when it is UTF-8, else base64 under `<name>_base64`. */
function jsonField(name: string, bytes: Uint8Array): string {
  try {
    return `${JSON.stringify(name)}:${JSON.stringify(strictDecoder.decode(bytes))}`;
  } catch {
    return `${JSON.stringify(`${name}_base64`)}:"${base64(bytes)}"`;
  }
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function jsonPair(key: Uint8Array, value: Uint8Array): Uint8Array {
  return encoder.encode(`{${jsonField("key", key)},${jsonField("value", value)}}\n`);
}

/**
 * The message for an error, in the command line's words: `--timeout-ms` for the library's
 * `timeoutMs`, `--tls-ca` for `tls.caCerts`, and a connection the server closed at once is
 * checked for the usual cause, a server that requires TLS.
 */
async function userMessage(error: KVError | BackupError, connection: Connection): Promise<string> {
  if (error instanceof KVAuthError) {
    if (/replication token/.test(error.message)) {
      return `${error.message} (give the server's replication token with ` +
        `--replication-token-file or KVSTORE_REPLICATION_TOKEN_FILE)`;
    }
    return `${error.message} (give the server's token with --auth-token-file, --auth-token or ` +
      `KVSTORE_AUTH_TOKEN)`;
  }
  if (error instanceof KVTimeoutError) {
    return `kvstore at ${error.address}: no reply to ${error.command} within ${error.timeoutMs} ms ` +
      `(--timeout-ms); the server may be overloaded, stopped (SIGSTOP) or not a kvstore`;
  }
  if (!(error instanceof KVConnectionError)) return error.message;
  const address = error.address;
  if (error.message.includes("TLS handshake failed")) {
    const cause = describe(error.cause);
    if (/does not speak TLS|corrupt message|InvalidContentType/i.test(cause + error.message)) {
      return `kvstore at ${address}: the server does not speak TLS (it answered the TLS ` +
        `handshake in plain text); connect without ${connection.tlsFlag ?? "--tls"}`;
    }
    return `kvstore at ${address}: TLS handshake failed: ${cause} (does ${
      connection.tlsFlag === "--tls" ? "the system's root store" : "--tls-ca"
    } hold the CA that signed the server's certificate, and does the certificate name ` +
      `${connection.host}?)`;
  }
  if (
    connection.tls === undefined && error.message.endsWith("the server closed the connection") &&
    await servesTls(connection)
  ) {
    return `kvstore at ${address}: the server closed the connection because it requires TLS; ` +
      `connect with --tls-ca <file> (its CA) or --tls (a certificate from a public CA)`;
  }
  return error.message;
}

/**
 * True when the server answers a TLS handshake (its certificate need not be trusted): a plain
 * connection to a TLS port is closed by the server without a word, and this tells why.
 */
async function servesTls(connection: Connection): Promise<boolean> {
  const timeoutMs = Math.min(connection.timeoutMs || Infinity, CLI_LIMITS.tlsProbeTimeoutMs);
  let tcp: Deno.TcpConn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const attempt = (async () => {
    tcp = await Deno.connect({ hostname: connection.host, port: connection.port });
    const tls = await Deno.startTls(tcp, { hostname: connection.host });
    try {
      await tls.handshake();
      return true;
    } catch (error) {
      // A certificate the system does not trust still proves the server speaks TLS.
      return /certificate|UnknownIssuer|NotValidForName|BadSignature/i.test(describe(error));
    } finally {
      tls.close();
    }
  })();
  try {
    return await Promise.race([
      attempt,
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs)),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    attempt.catch(() => {});
    // On a timeout the handshake is still waiting: closing the socket ends it.
    try {
      tcp?.close();
    } catch {
      // Closed by the TLS connection already.
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `kvstore backup --to DIR`: progress on stderr, a summary on stdout. */
async function backup(client: KVClient, dir: string): Promise<number> {
  // Loaded on demand: only backup writes a data directory (the storage engine, its npm logger).
  const { backupTo } = await import("../backup/backup_to.ts");
  let lastReportMs = 0;
  const result = await backupTo(client, dir, {
    onProgress: (progress) => {
      const nowMs = Date.now();
      if (nowMs - lastReportMs < 1000 && progress.keys < progress.totalKeys) return;
      lastReportMs = nowMs;
      const percent = progress.totalKeys === 0
        ? 100
        : Math.floor((progress.keys / progress.totalKeys) * 100);
      console.error(
        `backup: ${progress.keys} of ${progress.totalKeys} keys (${percent}%), ` +
          `${progress.bytes} bytes`,
      );
    },
  });
  console.log(
    `backup of ${client.address} at LSN ${result.lsn} (epoch ${result.epoch}): ${result.keys} ` +
      `keys, ${result.bytes} bytes in ${dir} (${Math.round(result.elapsedMs)} ms); restore: ` +
      `kvstore serve --data-dir ${dir}`,
  );
  return EXIT_OK;
}

/** The `key:value` fields of an INFO text. */
function infoFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/**
 * `kvstore replicas [add|remove|filter <h:p[prefixes],...>]`. Before `add`, each target is asked for its INFO: it
 * must answer as a replica, and not be the master itself under another name (same run_id).
 */
async function replicas(
  client: KVClient,
  connection: Connection,
  operands: string[],
  force: boolean,
): Promise<number> {
  if (operands.length === 1) return fail(usageLine("replicas"));
  if (operands.length === 2) {
    const action = operands[0].toLowerCase();
    if (action !== "add" && action !== "remove" && action !== "filter") {
      return fail(
        `replicas: "${operands[0]}" is not add, remove or filter (see kvstore replicas --help)`,
      );
    }
    if (action === "add") {
      const problem = await refuseAdd(client, connection, operands[1], force);
      if (problem !== undefined) return fail(problem);
    }
  }
  const reply = await client.send(["REPLICAS", ...operands]);
  if (Array.isArray(reply)) {
    for (const address of reply) {
      console.log(address instanceof Uint8Array ? decoder.decode(address) : address);
    }
  } else {
    console.log(reply);
  }
  return EXIT_OK;
}

/** Why `replicas add <targets>` must not go ahead, or undefined when every target is a replica. */
async function refuseAdd(
  master: KVClient,
  connection: Connection,
  targets: string,
  force: boolean,
): Promise<string | undefined> {
  const masterInfo = infoFields(await master.info("all"));
  const masterRunId = masterInfo.get("run_id");
  let addresses;
  try {
    // host:port[prefix,...]: a key filter's commas are not address separators.
    addresses = parseAddresses(targets, "replica address");
  } catch (error) {
    if (error instanceof ConfigError) return `replicas add: ${error.message}`;
    throw error;
  }
  for (const target of addresses) {
    const text = formatHostPort(target);
    const client = newClient(connection, target.host, target.port);
    let info: Map<string, string>;
    try {
      info = infoFields(await client.info("all"));
    } catch (error) {
      if (force) continue;
      const reason = error instanceof KVError
        ? await userMessage(error, connection)
        : describe(error);
      return `replicas add: cannot check that ${text} is a replica: ${reason} (--force adds it ` +
        `anyway; the master keeps trying it)`;
    } finally {
      await client.close();
    }
    if (masterRunId !== undefined && info.get("run_id") === masterRunId) {
      return `replicas add: ${text} is this master itself (run_id ${masterRunId}), not a replica`;
    }
    const role = info.get("role");
    if (role !== "replica") {
      return `replicas add: ${text} is ${
        role === undefined ? "not a kvstore node" : `a ${role}`
      }, not a replica; start it with --replica first (a master's data would be replaced by a ` +
        `full sync)`;
    }
  }
  return undefined;
}

async function run(
  client: KVClient,
  command: string,
  operands: string[],
  json: boolean,
): Promise<number> {
  switch (command) {
    case "read": {
      const value = await client.readBytes(operands[0]);
      if (value === undefined) return fail(`key "${operands[0]}" not found`, EXIT_NOT_FOUND);
      if (json) {
        writeOut(jsonPair(encoder.encode(operands[0]), value));
      } else {
        writeOut(value);
        writeOut(encoder.encode("\n"));
      }
      return EXIT_OK;
    }
    case "delete":
      if (!(await client.delete(operands[0]))) {
        return fail(`key "${operands[0]}" not found`, EXIT_NOT_FOUND);
      }
      console.log("OK");
      return EXIT_OK;
    case "readrange": {
      const pairs = await client.readRangeBytes(operands[0], operands[1]);
      if (pairs.length === 0) {
        return fail(`no keys between "${operands[0]}" and "${operands[1]}"`, EXIT_NOT_FOUND);
      }
      for (const [key, value] of pairs) {
        if (json) {
          writeOut(jsonPair(key, value));
        } else {
          writeOut(key);
          writeOut(encoder.encode("\t"));
          writeOut(value);
          writeOut(encoder.encode("\n"));
        }
      }
      return EXIT_OK;
    }
    case "batchput": {
      const keys = splitCommaList(operands[0]);
      const values = splitCommaList(operands[1]);
      if (keys.length !== values.length) {
        return fail(
          `batchput got ${keys.length} keys but ${values.length} values (a comma inside a key ` +
            `or value is written \\,)`,
        );
      }
      await client.batchPut(keys.map((key, i) => [key, values[i]] as const));
      console.log("OK");
      return EXIT_OK;
    }
    case "info":
      writeOut(encoder.encode((await client.info(operands[0])).replaceAll("\r\n", "\n")));
      return EXIT_OK;
    case "promote":
      console.log(`${client.address}: ${await client.send(["PROMOTE"])}`);
      return EXIT_OK;
    default: {
      const roundTripMs = await client.ping();
      console.log(`PONG (${roundTripMs.toFixed(2)} ms)`);
      return EXIT_OK;
    }
  }
}
