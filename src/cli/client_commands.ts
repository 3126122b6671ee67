/**
 * The client commands of the `kvstore` executable: `put`, `read`, `delete`, `readrange`,
 * `batchput`, `info`, `ping`, each with `--host`/`--port` (before or after the command, so the
 * spec's `client_cli --port 5556 read mykey` works as `kvstore --port 5556 read mykey`).
 *
 * Exit status: 0 success, 1 error, 2 not found; messages go to stderr, results to stdout.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KVClient } from "../client/client.ts";
import { BackupError } from "../backup/errors.ts";
import { KVAuthError, KVError } from "../client/errors.ts";
import { resolveToken } from "../security/auth.ts";
import { writeAllSync } from "../write_all.ts";

/** Usage lines of the client commands, for `kvstore --help`. */
export const CLIENT_USAGE = `  kvstore put <key> <value>                 store a value
  kvstore read <key>                        print a value (exit 2 when missing)
  kvstore delete <key>                      delete a key (exit 2 when missing)
  kvstore readrange <start> <end>           print key<TAB>value for start <= key <= end
  kvstore batchput <k1,k2,...> <v1,v2,...>  store several values atomically
  kvstore info [section]                    print the server's INFO
  kvstore ping                              check that the server answers
  kvstore backup --to DIR                   copy the server's data, consistent at one LSN,
                                            into the new directory DIR (serve it to restore)
  kvstore promote                           make the replica at --host/--port a master
                                            (new epoch; it keeps its data and LSN)
  kvstore replicas [add|remove <h:p,...>]   list or change a master's replicas at runtime`;

/** The options of the client commands, for `kvstore --help`. */
export const CLIENT_OPTIONS_USAGE = `Client options (before or after the command):
  --host <host>          server address (default 127.0.0.1, env KVSTORE_HOST)
  --port <port>          server port (default 5555, env KVSTORE_PORT)
  --timeout-ms <ms>      how long to wait for the server (default 10000)
  --auth-token <token>   the server's AUTH_TOKEN (env KVSTORE_AUTH_TOKEN; flags show in ps)
  --auth-token-file <f>  read the token from a file (env KVSTORE_AUTH_TOKEN_FILE)
  --tls-ca <file>        connect over TLS, trusting this PEM CA (env KVSTORE_TLS_CA)
  --tls                  connect over TLS, trusting the system's root certificates
`;

/** Exit status of a client command. */
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_NOT_FOUND = 2;

/** Names of the client commands. */
export const CLIENT_COMMANDS: ReadonlySet<string> = new Set([
  "put",
  "read",
  "delete",
  "readrange",
  "batchput",
  "info",
  "ping",
  "backup",
  "promote",
  "replicas",
]);

const ARITY: Record<string, [number, number, string]> = {
  put: [2, 2, "<key> <value>"],
  read: [1, 1, "<key>"],
  delete: [1, 1, "<key>"],
  readrange: [2, 2, "<start> <end>"],
  batchput: [2, 2, "<k1,k2,...> <v1,v2,...>"],
  info: [0, 1, "[section]"],
  ping: [0, 0, ""],
  backup: [0, 0, "--to DIR"],
  promote: [0, 0, ""],
  replicas: [0, 2, "[add|remove <host:port,...>]"],
};

const encoder = new TextEncoder();

function writeOut(bytes: Uint8Array): void {
  writeAllSync(Deno.stdout, bytes);
}

function fail(message: string, code = EXIT_ERROR): number {
  console.error(`kvstore: ${message}`);
  return code;
}

/**
 * Runs client command `command` with `args` (its operands and options, without the command
 * word); resolves to the exit status.
 */
export async function runClientCommand(command: string, args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        "timeout-ms": { type: "string" },
        "auth-token": { type: "string" },
        "auth-token-file": { type: "string" },
        "tls-ca": { type: "string" },
        tls: { type: "boolean" },
        to: { type: "string" },
      },
    });
  } catch (error) {
    return fail(`${error instanceof Error ? error.message : error} (see kvstore --help)`);
  }
  const operands = parsed.positionals;
  const [min, max, shape] = ARITY[command];
  if (operands.length < min || operands.length > max) {
    return fail(`usage: kvstore ${command} ${shape}`.trimEnd());
  }
  const host = parsed.values.host ?? Deno.env.get("KVSTORE_HOST") ?? "127.0.0.1";
  const portText = parsed.values.port ?? Deno.env.get("KVSTORE_PORT") ?? "5555";
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return fail(`--port "${portText}" is not a port number (1..65535)`);
  }
  const timeoutText = parsed.values["timeout-ms"] ?? "10000";
  const timeoutMs = Number(timeoutText);
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    return fail(`--timeout-ms "${timeoutText}" is not a number of milliseconds`);
  }
  const values = parsed.values;
  let token: string | undefined;
  let caCerts: string[] | undefined;
  try {
    token = await resolveToken(
      "--auth-token",
      values["auth-token"] ?? Deno.env.get("KVSTORE_AUTH_TOKEN") ?? "",
      values["auth-token-file"] ?? Deno.env.get("KVSTORE_AUTH_TOKEN_FILE") ?? "",
    );
    const caFile = values["tls-ca"] ?? Deno.env.get("KVSTORE_TLS_CA");
    if (caFile !== undefined) caCerts = [await readCa(caFile)];
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
  if (command === "backup" && values.to === undefined) {
    return fail("usage: kvstore backup --to DIR (a new or empty directory)");
  }
  const tls = caCerts !== undefined || values.tls === true ? { caCerts } : undefined;
  const client = new KVClient({ host, port, timeoutMs, token, tls });
  try {
    if (command === "backup") return await backup(client, values.to as string);
    return await run(client, command, operands);
  } catch (error) {
    if (error instanceof KVAuthError) {
      return fail(
        `${error.message} (give the server's token with --auth-token-file, --auth-token or ` +
          `KVSTORE_AUTH_TOKEN)`,
      );
    }
    if (error instanceof KVError || error instanceof BackupError) return fail(error.message);
    throw error;
  } finally {
    await client.close();
  }
}

async function readCa(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`--tls-ca: cannot read ${path}: ${String(error)}`);
  }
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

async function run(client: KVClient, command: string, operands: string[]): Promise<number> {
  switch (command) {
    case "put":
      await client.put(operands[0], operands[1]);
      console.log("OK");
      return EXIT_OK;
    case "read": {
      const value = await client.readBytes(operands[0]);
      if (value === undefined) return fail(`key "${operands[0]}" not found`, EXIT_NOT_FOUND);
      writeOut(value);
      writeOut(encoder.encode("\n"));
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
        writeOut(key);
        writeOut(encoder.encode("\t"));
        writeOut(value);
        writeOut(encoder.encode("\n"));
      }
      return EXIT_OK;
    }
    case "batchput": {
      const keys = operands[0].split(",");
      const values = operands[1].split(",");
      if (keys.length !== values.length) {
        return fail(`batchput got ${keys.length} keys but ${values.length} values`);
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
    case "replicas": {
      if (operands.length === 1) {
        return fail("usage: kvstore replicas [add|remove <host:port,...>]");
      }
      const reply = await client.send(["REPLICAS", ...operands]);
      if (Array.isArray(reply)) {
        for (const address of reply) {
          console.log(address instanceof Uint8Array ? new TextDecoder().decode(address) : address);
        }
      } else {
        console.log(reply);
      }
      return EXIT_OK;
    }
    default: {
      const roundTripMs = await client.ping();
      console.log(`PONG (${roundTripMs.toFixed(2)} ms)`);
      return EXIT_OK;
    }
  }
}
