/**
 * Conformance tables of the connection commands: PING, ECHO, HELLO and RESP3, CLIENT, SELECT,
 * TIME, RESET, QUIT, INFO, COMMAND (COUNT, LIST FILTERBY, GETKEYS), unknown commands and arity,
 * inline commands and broken framing, and AUTH with a password set.
 *
 * @module
 */
import { CONFORMANCE_TOKEN, type ConformanceFamily } from "../conformance.ts";

/** The `id` field of a HELLO reply differs between servers: masked. */
const HELLO_ID = /\$2\\r\\nid\\r\\n:\d+/;

const LONG = "x".repeat(100);

export const CONNECTION: ConformanceFamily = {
  family: "connection",
  cases: [
    {
      name: "PING and ECHO",
      steps: [
        ["PING"],
        ["ping", "hello"],
        ["PING", "a", "b"],
        ["ECHO", "x y"],
        ["ECHO", new Uint8Array([0, 13, 10, 255])],
        ["ECHO"],
        ["echo", "a", "b"],
      ],
    },
    {
      name: "unknown commands and wrong argument counts, in Redis's words",
      steps: [
        ["FOO"],
        ["foo", "a", "b"],
        ["NOSUCH", LONG, LONG, "c"],
        ["GET"],
        ["CLIENT"],
        ["CLIENT", "FOO"],
        ["CLIENT", "ID", "x"],
        ["CLIENT", "SETNAME"],
        ["CLIENT", "KILL"],
        ["COMMAND", "FOO"],
        ["TIME", "x"],
        ["SELECT"],
        ["RESET", "x"],
      ],
    },
    {
      name: "HELLO answers RESP2 and switches to RESP3",
      steps: [
        { send: ["HELLO"], mask: HELLO_ID },
        { send: ["HELLO", "2"], mask: HELLO_ID },
        { send: ["HELLO", "3"], mask: HELLO_ID },
        ["PING"],
        ["GET", "conformance:connection:missing"],
        ["CLIENT", "GETNAME"],
        ["INFO", "no-such-section"],
        ["ECHO", "resp3"],
        { send: ["HELLO", "2"], mask: HELLO_ID },
        ["GET", "conformance:connection:missing"],
      ],
    },
    {
      name: "HELLO's errors leave the protocol as it was",
      steps: [
        ["HELLO", "4"],
        ["HELLO", "1"],
        ["HELLO", "-1"],
        ["HELLO", "abc"],
        ["HELLO", "99999999999999999999"],
        ["HELLO", "99999999999999999"],
        ["HELLO", "-9223372036854775808"],
        ["HELLO", "9223372036854775808"],
        ["HELLO", " 3"],
        ["HELLO", "3", "FOO"],
        ["HELLO", "3", "SETNAME"],
        ["HELLO", "3", "SETNAME", "a b"],
        ["HELLO", "3", "SETNAME", "a\nb"],
        ["HELLO", "3", "AUTH", "default"],
        ["GET", "conformance:connection:missing"],
        { send: ["HELLO", "3", "SETNAME", "named"], mask: HELLO_ID },
        ["CLIENT", "GETNAME"],
      ],
    },
    {
      name: "HELLO AUTH on a server without a password (Redis's passwordless default user)",
      steps: [
        { send: ["HELLO", "3", "AUTH", "default", "anything"], mask: HELLO_ID },
        ["HELLO", "3", "AUTH", "someone", "anything"],
        ["AUTH", "anything"],
        ["AUTH", "default", "anything"],
        ["AUTH", "a", "b", "c"],
      ],
    },
    {
      name: "CLIENT ID, SETNAME, GETNAME",
      steps: [
        { send: ["CLIENT", "ID"], compare: "shape" },
        ["CLIENT", "GETNAME"],
        ["CLIENT", "SETNAME", "a b"],
        ["CLIENT", "SETNAME", "a\nb"],
        ["CLIENT", "SETNAME", "\u00e9"],
        ["CLIENT", "SETNAME", "conn-1"],
        ["client", "getname"],
        ["CLIENT", "SETNAME", ""],
        ["CLIENT", "GETNAME"],
        ["CLIENT", "SETNAME", "x", "y"],
      ],
    },
    {
      name: "CLIENT LIST and CLIENT INFO",
      steps: [
        { send: ["CLIENT", "LIST"], compare: "shape" },
        { send: ["CLIENT", "LIST", "TYPE", "normal"], compare: "shape" },
        ["CLIENT", "LIST", "TYPE", "master"],
        ["CLIENT", "LIST", "TYPE", "bad"],
        ["CLIENT", "LIST", "ID", "1", "x"],
        ["CLIENT", "LIST", "ID", "999999"],
        ["CLIENT", "LIST", "ID", "9007199254740993"],
        ["CLIENT", "LIST", "ID", "-1"],
        ["CLIENT", "LIST", "ID", "0", "9223372036854775807"],
        ["CLIENT", "LIST", "ID", "18446744073709551615"],
        ["CLIENT", "LIST", "foo"],
        ["CLIENT", "LIST", "TYPE"],
        { send: ["CLIENT", "INFO"], compare: "shape" },
        { send: ["HELLO", "3"], mask: HELLO_ID },
        { send: ["CLIENT", "INFO"], compare: "shape" },
        { send: ["CLIENT", "LIST"], compare: "shape" },
      ],
    },
    {
      name: "CLIENT KILL's forms and errors",
      steps: [
        ["CLIENT", "KILL", "1.2.3.4:5"],
        ["CLIENT", "KILL", "ID"],
        ["CLIENT", "KILL", "ID", "x"],
        ["CLIENT", "KILL", "ID", "0"],
        ["CLIENT", "KILL", "ID", "999999"],
        ["CLIENT", "KILL", "ID", "9007199254740993"],
        ["CLIENT", "KILL", "ID", "9223372036854775807"],
        ["CLIENT", "KILL", "ID", "9223372036854775808"],
        ["CLIENT", "KILL", "ID", "-5"],
        ["CLIENT", "KILL", "TYPE", "master"],
        ["CLIENT", "KILL", "TYPE", "bad"],
        ["CLIENT", "KILL", "FOO", "x"],
        ["CLIENT", "KILL", "SKIPME", "maybe"],
        ["CLIENT", "KILL", "USER", "bob"],
        ["CLIENT", "KILL", "ADDR", "1.2.3.4:5", "SKIPME", "no"],
        ["CLIENT", "KILL", "ID", "1", "TYPE"],
      ],
    },
    {
      name: "CLIENT SETINFO and HELP (Redis 7.2's, answered by kvstore)",
      steps: [
        {
          send: ["CLIENT", "SETINFO", "lib-name", "redis-py"],
          differs: "CLIENT SETINFO is Redis 7.2's (client libraries send it at connect); " +
            "kvstore answers it, Redis 7.0 does not know it",
          kvstore: "+OK\\r\\n",
        },
        {
          send: ["CLIENT", "SETINFO", "LIB-VER", "a b"],
          differs: "Redis 7.2's refusal of a version with a space",
          kvstore: "-ERR LIB-VER cannot contain spaces, newlines or special characters.\\r\\n",
        },
        {
          send: ["CLIENT", "SETINFO", "lib-foo", "x"],
          differs: "Redis 7.2's refusal of an attribute it does not know",
          kvstore: "-ERR Unrecognized option 'lib-foo'\\r\\n",
        },
        {
          send: ["CLIENT", "HELP"],
          differs: "kvstore's help lists the subcommands it has",
          kvstore: /^\*\d+\\r\\n\+CLIENT <subcommand>/,
        },
      ],
    },
    {
      name: "SELECT: one database",
      steps: [
        ["SELECT", "0"],
        ["SELECT", "1"],
        ["SELECT", "15"],
        ["SELECT", "-1"],
        ["SELECT", "x"],
        ["SELECT", "01"],
        ["SELECT", "4294967296"],
        ["SELECT", "99999999999999999"],
        ["SELECT", "-9223372036854775808"],
        ["SELECT", "9223372036854775808"],
        ["select", "0"],
      ],
    },
    {
      name: "WAIT takes any 64-bit count and timeout",
      steps: [
        ["WAIT", "0", "9007199254740993"],
        ["WAIT", "0", "9223372036854775807"],
        ["WAIT", "9007199254740993", "1"],
        ["WAIT", "-1", "0"],
        ["WAIT", "0", "9223372036854775808"],
        ["WAIT", "0", "-1"],
        ["WAIT", "0", "x"],
        ["WAIT", "x", "0"],
        ["WAIT", "99999999999999999999", "0"],
      ],
    },
    {
      name: "TIME",
      steps: [{ send: ["TIME"], compare: "shape" }],
    },
    {
      name: "RESET forgets the name and RESP3",
      steps: [
        { send: ["HELLO", "3", "SETNAME", "before-reset"], mask: HELLO_ID },
        ["RESET"],
        ["CLIENT", "GETNAME"],
        ["GET", "conformance:connection:missing"],
        ["reset"],
      ],
    },
    {
      name: "INFO",
      steps: [
        ["INFO", "no-such-section"],
        ["INFO", "no", "such"],
        { send: ["INFO", "server"], compare: "shape" },
        { send: ["INFO", "clients", "persistence"], compare: "shape" },
        { send: ["HELLO", "3"], mask: HELLO_ID },
        { send: ["INFO", "server"], compare: "shape" },
      ],
    },
    {
      name: "COMMAND",
      steps: [
        { send: ["COMMAND", "COUNT"], compare: "shape" },
        ["COMMAND", "INFO", "no-such-command"],
        ["COMMAND", "DOCS", "no-such-command"],
        ["COMMAND", "COUNT", "x"],
      ],
    },
    {
      // Redis lists in its hash table's order, seeded at random at each start: sorted. A filter
      // that would match a subcommand (Redis lists `client|id`) or a command kvstore lacks is
      // not used here.
      name: "COMMAND LIST FILTERBY PATTERN, ACLCAT and MODULE",
      steps: [
        ["COMMAND", "LIST", "FILTERBY", "PATTERN", "getr*"],
        ["COMMAND", "LIST", "FILTERBY", "pattern", "GETR*"],
        { send: ["COMMAND", "LIST", "FILTERBY", "PATTERN", "incr*"], compare: "sorted" },
        { send: ["COMMAND", "LIST", "FILTERBY", "PATTERN", "[gs]et"], compare: "sorted" },
        ["COMMAND", "LIST", "FILTERBY", "PATTERN", "no-such-*"],
        { send: ["COMMAND", "LIST", "FILTERBY", "ACLCAT", "string"], compare: "sorted" },
        { send: ["COMMAND", "LIST", "FILTERBY", "aclcat", "Transaction"], compare: "sorted" },
        ["COMMAND", "LIST", "FILTERBY", "ACLCAT", "@string"],
        ["COMMAND", "LIST", "FILTERBY", "ACLCAT", "no-such-category"],
        ["COMMAND", "LIST", "FILTERBY", "MODULE", "no-such-module"],
        ["COMMAND", "LIST", "FILTERBY", "NAME", "get"],
        ["COMMAND", "LIST", "FILTERBY", "PATTERN"],
        ["COMMAND", "LIST", "FILTERBY", "PATTERN", "a", "FILTERBY", "PATTERN", "b"],
        ["COMMAND", "LIST", "x"],
      ],
    },
    {
      name: "COMMAND GETKEYS: a call's keys, and Redis's errors",
      steps: [
        ["COMMAND", "GETKEYS", "GET", "k"],
        ["COMMAND", "GETKEYS", "get", "k"],
        ["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"],
        ["COMMAND", "GETKEYS", "MSET", "a", "1", "b"],
        ["COMMAND", "GETKEYS", "DEL", "a", "b", "c"],
        ["COMMAND", "GETKEYS", "COPY", "a", "b", "REPLACE"],
        ["COMMAND", "GETKEYS", "SET", "k", "v", "EX", "10"],
        ["COMMAND", "GETKEYS", "WATCH", "a", "b"],
        ["COMMAND", "GETKEYS", "PING", "x"],
        ["COMMAND", "GETKEYS", "TIME", "x"],
        ["COMMAND", "GETKEYS", "CLIENT", "ID"],
        ["COMMAND", "GETKEYS", "NOSUCH", "a"],
        ["COMMAND", "GETKEYS", "GET", "a", "b"],
        ["COMMAND", "GETKEYS", "MSET", "a"],
        ["COMMAND", "GETKEYS", "GET"],
        ["COMMAND", "GETKEYS"],
      ],
    },
    {
      name: "CONFIG GET: a map of names, patterns and several at once, in RESP2 and RESP3",
      steps: [
        ["CONFIG", "GET", "maxclients"],
        ["CONFIG", "GET", "no-such-parameter"],
        ["CONFIG", "GET", "MAXCLIENTS"],
        ["CONFIG", "GET", "Max?lients"],
        ["CONFIG", "GET", "save"],
        { send: ["CONFIG", "GET", "maxclients", "databases"], compare: "pairs" },
        { send: ["CONFIG", "GET", "databases", "save", "no-such-parameter"], compare: "pairs" },
        ["CONFIG", "GET", "maxclients", "MaxClients"],
        ["CONFIG", "GET", "maxclients", "maxclient?"],
        {
          send: ["CONFIG", "GET", "*max*clients*"],
          differs: "maxmemory-clients is kvstore's MAX_CLIENT_MEMORY_BYTES, which bounds what " +
            "Redis's parameter bounds (all connections' buffers together); Redis's default is 0, " +
            "no bound, and kvstore always has one",
          kvstore: "*4\\r\\n$10\\r\\nmaxclients\\r\\n$5\\r\\n10000\\r\\n" +
            "$17\\r\\nmaxmemory-clients\\r\\n$10\\r\\n1073741824\\r\\n",
        },
        {
          send: ["CONFIG", "GET", "appendonly"],
          differs: "kvstore's log is always on: appendonly is yes (Redis here runs without one)",
          kvstore: "*2\\r\\n$10\\r\\nappendonly\\r\\n$3\\r\\nyes\\r\\n",
        },
        ["CONFIG", "GET"],
        ["CONFIG"],
        ["CONFIG", "FOO"],
        { send: ["HELLO", "3"], mask: HELLO_ID },
        ["CONFIG", "GET", "maxclients"],
        ["CONFIG", "GET", "no-such-parameter"],
        ["CONFIG", "GET", "MAXCLIENTS"],
        { send: ["CONFIG", "GET", "maxclients", "databases"], compare: "pairs" },
      ],
    },
    {
      name: "QUIT answers OK and closes",
      steps: [{ send: ["QUIT"], closes: true }],
    },
    {
      name: "inline commands (RESP port)",
      steps: [
        { send: "PING\r\n", respPortOnly: true },
        { send: "ping hello\r\n", respPortOnly: true },
        { send: "  PING   x  \n", respPortOnly: true },
        { send: "\r\n\n   \r\nPING\r\n", respPortOnly: true },
        { send: 'ECHO "a b\\x41\\n"\r\n', respPortOnly: true },
        { send: "ECHO 'it\\'s'\n", respPortOnly: true },
        { send: 'ECHO a"b c" d\r\n', respPortOnly: true },
        { send: 'ECHO a"b c"\r\n', respPortOnly: true },
        { send: "%3\r\n", respPortOnly: true },
        { send: "GET\r\n", respPortOnly: true },
        { send: "*1\r\n$4\r\nPING\r\nPING\r\n", replies: 2, respPortOnly: true },
      ],
    },
    {
      name: "inline: unbalanced quotes close the connection (RESP port)",
      steps: [{ send: 'ECHO "a"b\r\n', respPortOnly: true, closes: true }],
    },
    {
      name: "inline: an unterminated quote closes the connection (RESP port)",
      steps: [{ send: 'SET k "open\r\n', respPortOnly: true, closes: true }],
    },
    {
      name: "an empty array is skipped without a reply",
      steps: [{ send: "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n" }],
    },
    {
      name: "a bad multibulk length is a protocol error that closes",
      steps: [{ send: "*1\r\n$4\r\nPING\r\n*x\r\n", replies: 2, closes: true }],
    },
    {
      name: "a bad bulk length is a protocol error that closes",
      steps: [{ send: "*1\r\n$x\r\n", closes: true }],
    },
    {
      name: "a bulk where a bulk string's '$' belongs is a protocol error that closes",
      steps: [{ send: "*1\r\n%4\r\n", closes: true }],
    },
  ],
};

export const CONNECTION_AUTH: ConformanceFamily = {
  family: "connection with a password",
  auth: true,
  cases: [
    {
      name: "commands before AUTH get NOAUTH; AUTH's forms",
      steps: [
        ["GET", "k"],
        ["CLIENT", "ID"],
        ["HELLO"],
        ["HELLO", "3"],
        ["AUTH", "wrong"],
        ["AUTH", "bob", "wrong"],
        ["AUTH", "default", "wrong"],
        ["AUTH", "a", "b", "c"],
        ["HELLO", "3", "AUTH", "default", "wrong"],
        ["HELLO", "3", "AUTH", "default"],
        ["HELLO", "4", "AUTH", "default", CONFORMANCE_TOKEN],
        ["GET", "k"],
        {
          send: ["PING"],
          differs: "kvstore answers PING before AUTH (load balancers' and kvstore's own " +
            "health checks); Redis refuses it",
          kvstore: "+PONG\\r\\n",
        },
        ["AUTH", CONFORMANCE_TOKEN],
        ["GET", "conformance:connection:missing"],
      ],
    },
    {
      name: "HELLO AUTH authenticates, names and switches at once; RESET forgets it",
      steps: [
        {
          send: ["HELLO", "3", "AUTH", "default", CONFORMANCE_TOKEN, "SETNAME", "me"],
          mask: HELLO_ID,
        },
        ["CLIENT", "GETNAME"],
        ["GET", "conformance:connection:missing"],
        ["RESET"],
        ["GET", "conformance:connection:missing"],
        ["CLIENT", "GETNAME"],
        ["AUTH", "default", CONFORMANCE_TOKEN],
        ["CLIENT", "GETNAME"],
      ],
    },
  ],
};
