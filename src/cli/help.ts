/**
 * The help texts of the `kvstore` executable: a short top-level `kvstore --help` (one line per
 * command), and `kvstore <command> --help` (or `kvstore help <command>`) for each command, with
 * its arguments, options and examples. `kvstore serve --help` lists every setting.
 *
 * @module
 */
import { VERSION } from "../version.ts";

/** The help of one command. */
interface CommandHelp {
  /** Arguments after the command word, e.g. `<key> [<value> | -]`. */
  usage: string;
  /** One line for the top-level list. */
  summary: string;
  /** The rest of `kvstore <command> --help`: details, options, examples. */
  details: string;
}

/** Options every client command takes, for `kvstore <command> --help`. */
export const CLIENT_OPTIONS_HELP = `Connection options (before or after the command):
  --host <host>            server address (default 127.0.0.1, env KVSTORE_HOST)
  --port <port>            server port (default 5555, env KVSTORE_PORT)
  --nodes <h:p,h:p,...>    a cluster instead of one node (env KVSTORE_NODES): writes go to the
                           master it finds, after a failover too (not for promote, replicas,
                           backup)
  --read-from <where>      with --nodes, where read and readrange read: primary (default),
                           replica, or nearest (lowest round trip)
  --timeout-ms <ms>        how long to wait for the server (default 10000)
  --auth-token-file <file> read the server's token from a file (env KVSTORE_AUTH_TOKEN_FILE)
  --auth-token <token>     the server's token (env KVSTORE_AUTH_TOKEN; a flag shows in ps)
  --replication-token-file <file>, --replication-token <token>
                           the server's REPLICATION_TOKEN, which promote and replicas need when
                           it differs from the client token; proved, never sent (env
                           KVSTORE_REPLICATION_TOKEN_FILE, KVSTORE_REPLICATION_TOKEN)
  --tls-ca <file>          connect over TLS, trusting this PEM CA (env KVSTORE_TLS_CA)
  --tls                    connect over TLS, trusting the system's root certificates`;

const EXIT_CODES = "Exit status: 0 success, 1 error (reason on stderr), 2 key not found.";

/** Every command's help, in the order of the top-level list. */
export const COMMAND_HELP: Readonly<Record<string, CommandHelp>> = {
  serve: {
    usage: "[settings]",
    summary: "start a node (a master, or a replica with --replica)",
    details: "", // serve.ts prints its own help with every setting.
  },
  put: {
    usage: "<key> (<value> | - | --value-file <file>)",
    summary: "store a value",
    details: `Stores <value> under <key>; prints OK once the write is durable (and replicated, in
sync mode). The value can also come from standard input, as its exact bytes (no newline is added
or removed): give - as the value, or -x (as in redis-cli). --value-file <file> reads it from a
file. Use these for values with binary data or larger than the command line allows (~128 KiB).

Examples:
  kvstore put greeting "hello world"
  kvstore put photo --value-file photo.jpg
  printf 'line 1\\nline 2' | kvstore put notes -
  kvstore put notes -x < notes.txt

${EXIT_CODES}`,
  },
  read: {
    usage: "<key> [--json] [--read-from primary|replica|nearest]",
    summary: "print a value (exit 2 when missing)",
    details: `Prints the value's exact bytes followed by a newline (the default). With --json it
prints one JSON object {"key": ..., "value": ...} instead, which is unambiguous for values that
hold newlines; a key or value that is not UTF-8 text is given as "key_base64"/"value_base64".

Examples:
  kvstore read greeting
  kvstore read greeting --json | jq -r .value
  kvstore --nodes db1:5555,db2:5555 read greeting --read-from replica

${EXIT_CODES}`,
  },
  delete: {
    usage: "<key>",
    summary: "delete a key (exit 2 when missing)",
    details: `Deletes <key>; prints OK, or exits 2 when there was no such key.

${EXIT_CODES}`,
  },
  readrange: {
    usage: "<start> <end> [--json] [--read-from primary|replica|nearest]",
    summary: "print the pairs with start <= key <= end",
    details: `Prints every pair with start <= key <= end, in byte order of the keys. The default
format is one "key<TAB>value" line per pair, for people and simple scripts: it is ambiguous when a
key or value holds a tab or a newline. --json prints one JSON object per line (JSON Lines)
instead: {"key": ..., "value": ...}, with "key_base64"/"value_base64" for bytes that are not UTF-8.

Examples:
  kvstore readrange user: user:~
  kvstore readrange a z --json | jq -r .key

${EXIT_CODES} (2: no key in the range)`,
  },
  batchput: {
    usage: "<k1,k2,...> <v1,v2,...>",
    summary: "store several values atomically",
    details: `Stores every pair at once: after a crash all of them are there or none. Keys and
values are separated by commas; write a comma that belongs to a key or value as \\, and a
backslash before a comma as \\\\ (other backslashes stay as they are). The counts must match.

Examples:
  kvstore batchput k1,k2,k3 v1,v2,v3
  kvstore batchput price,label '3\\,50,a\\, b'      # price=3,50 label=a, b

${EXIT_CODES}`,
  },
  info: {
    usage: "[section]",
    summary: "print the server's INFO",
    details: `Prints the server's INFO: every section, or one of server, clients, stats, storage,
replication, backup.

Examples:
  kvstore info replication
  kvstore --port 5556 info replication     # a replica: its master, link status and lag`,
  },
  ping: {
    usage: "",
    summary: "check that the server answers",
    details: `Prints PONG and the round-trip time, or exits 1 with the reason.`,
  },
  backup: {
    usage: "--to <dir>",
    summary: "copy a running node's data, consistent at one LSN, into <dir>",
    details: `Copies the server's data, consistent at one LSN, into the new (or empty) directory
<dir> on this machine; writes go on meanwhile. Progress goes to stderr, a summary to stdout. The
copy is a data directory: serve it to restore, or look inside it with kvstore inspect.

Example:
  kvstore backup --to backups/kvstore-$(date +%F)`,
  },
  promote: {
    usage: "",
    summary: "make the replica at --host/--port a master (new epoch)",
    details: `Makes the replica at --host/--port a master of a new epoch; it keeps its data and LSN.
See the failover guide (or scripts/failover.sh, which does every step).`,
  },
  replicas: {
    usage: "[add|remove <host:port,...>] [--force]",
    summary: "list or change a master's replicas at runtime",
    details: `Lists the master's replicas, or adds or removes some at runtime. Before adding, it
checks that each target answers as a replica and is not the master itself, and refuses otherwise
(a master's data would be replaced by a full sync); --force adds a target it cannot reach (the
master keeps trying it).

Examples:
  kvstore --port 5566 replicas
  kvstore --port 5566 replicas add localhost:5567
  kvstore --port 5566 replicas remove localhost:5567`,
  },
  cluster: {
    usage: "status [--json] [--etcd-endpoints <urls>] [--cluster-name <name>]",
    summary: "list the members of a cluster run by etcd (--coordinator etcd)",
    details: `Reads the cluster from etcd (so it works while nodes are down) and prints every
member: its role (leader, replica, or down for a node the cluster had that is not registered now),
address, epoch, applied LSN, lag behind the leader in records, the time its lease in etcd has left,
and its health (healthy, unhealthy: a replica whose master link is down or a master that takes no
writes; full sync; diverged). --json prints one JSON object. The endpoints and the cluster name
default to KVSTORE_ETCD_ENDPOINTS and KVSTORE_CLUSTER_NAME, as for kvstore serve.

Example:
  kvstore cluster status --etcd-endpoints http://127.0.0.1:2379 --cluster-name prod`,
  },
  switchover: {
    usage: "--to <name> [--timeout-ms <ms>] [--etcd-endpoints <urls>] [--cluster-name <name>]",
    summary: "hand the master role to another member, losing nothing",
    details: `Planned switchover of a cluster run by etcd: finds the master through the leader key
and asks it (SWITCHOVER) to stop taking writes, wait until <name> has every LSN it wrote (at most
--timeout-ms, default 10000), and hand <name> the leader key in a new epoch. The old master then
follows <name>. Clients see a short pause: writes meanwhile get -READONLY, which KVClient retries on
the new master. If <name> does not catch up in time nothing changes and writes resume. Takes
--auth-token(-file), --replication-token(-file), --tls-ca <file> and --tls like the other
commands.

Example:
  kvstore switchover --to node2 --etcd-endpoints http://127.0.0.1:2379 --cluster-name prod`,
  },
  repair: {
    usage: "--data-dir <dir> [--yes]",
    summary: "truncate a damaged log at its first bad record",
    details: `Finds the first damaged record of a data directory whose node refuses to start, and
says what truncating there loses; with --yes it truncates. It works on a stopped node only: on a
directory a running node holds it says which process that is.

Example:
  kvstore repair --data-dir /var/lib/kvstore          # then again with --yes`,
  },
  inspect: {
    usage: "--data-dir <dir> [--json] [--keys]",
    summary: "describe a data directory without changing it (read-only)",
    details: `Reads a data directory (a backup, or a stopped or running node's) and prints its
segments with their health, the LSN range, the epoch, the number of live keys and their bytes. It
never writes: no lock, no repair, no hint file; a damaged record is reported, not fixed. --keys
also lists the live keys (one per line; JSON Lines with --json).

Examples:
  kvstore inspect --data-dir backups/kvstore-2026-01-01
  kvstore inspect --data-dir ./kvstore_data --json`,
  },
};

/** The names of the commands, in help order. */
export const COMMAND_NAMES: readonly string[] = Object.keys(COMMAND_HELP);

/** `kvstore --help`: one line per command; settings are in `kvstore serve --help`. */
export function topLevelHelp(): string {
  const width = Math.max(...COMMAND_NAMES.map((name) => name.length));
  const lines = COMMAND_NAMES.map((name) =>
    `  ${name.padEnd(width)}  ${COMMAND_HELP[name].summary}`
  );
  return `kvstore ${VERSION}: a persistent key-value store with master-replica replication

Usage: kvstore <command> [arguments] [options]

Commands:
${lines.join("\n")}

  kvstore <command> --help    a command's arguments, options and examples
  kvstore serve --help        every server setting (flags and KVSTORE_* variables)
  kvstore --version           the version and build

${CLIENT_OPTIONS_HELP}
`;
}

/** `kvstore <command> --help` for a command other than `serve`. */
export function commandHelp(name: string): string {
  const help = COMMAND_HELP[name];
  const usage = `Usage: kvstore ${name} ${help.usage}`.trimEnd();
  const local = ["repair", "inspect", "cluster", "switchover"].includes(name);
  return `${usage}\n\n${help.details}\n` +
    (local ? "" : `\n${CLIENT_OPTIONS_HELP}\n`);
}
