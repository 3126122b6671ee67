import assert from "node:assert/strict";
import { describeSettings } from "../../src/config.ts";
import { KVClient } from "../../mod.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { kvstore } from "../helpers/cli.ts";
import { freePort } from "../helpers/cluster.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const ROOT = new URL("../../", import.meta.url);
const decoder = new TextDecoder();

Deno.test("cli: the spec's client commands, with exit codes 0, 1 and 2", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  const port = String(server.port);
  assert.deepEqual(await kvstore(["put", "mykey", "myvalue", "--port", port]), {
    code: 0,
    stdout: "OK\n",
    stderr: "",
  });
  // The spec's `client_cli --port 5556 read mykey`: options before the command.
  assert.deepEqual(await kvstore(["--port", port, "read", "mykey"]), {
    code: 0,
    stdout: "myvalue\n",
    stderr: "",
  });
  assert.deepEqual(await kvstore(["read", "nokey", "--port", port]), {
    code: 2,
    stdout: "",
    stderr: 'kvstore: key "nokey" not found\n',
  });
  assert.equal((await kvstore(["batchput", "a,b,c", "1,2,3", "--port", port])).stdout, "OK\n");
  assert.deepEqual(await kvstore(["readrange", "a", "b", "--port", port]), {
    code: 0,
    stdout: "a\t1\nb\t2\n",
    stderr: "",
  });
  assert.equal((await kvstore(["readrange", "x", "y", "--port", port])).code, 2);
  assert.deepEqual(await kvstore(["delete", "a", "--port", port]), {
    code: 0,
    stdout: "OK\n",
    stderr: "",
  });
  assert.equal((await kvstore(["delete", "a", "--port", port])).code, 2);
  const info = await kvstore(["info", "storage", "--port", port]);
  assert.equal(info.code, 0);
  assert.match(info.stdout, /^# Storage\nkeys:3\n/);
  assert.match((await kvstore(["ping", "--port", port])).stdout, /^PONG \(\d+\.\d+ ms\)\n$/);
  // KVSTORE_PORT works for the client commands too.
  assert.equal((await kvstore(["read", "b"], { KVSTORE_PORT: port })).stdout, "2\n");
});

Deno.test("cli: errors exit 1 with the reason on stderr", async () => {
  await using replica = await startTestServer({ FSYNC: "no", REPLICA: true });
  const port = String(replica.port);
  assert.deepEqual(await kvstore(["put", "k", "v", "--port", port]), {
    code: 1,
    stdout: "",
    stderr: "kvstore: Replica nodes are read-only. Please send writes to the master node.\n",
  });
  const mismatch = await kvstore(["batchput", "a,b", "1", "--port", port]);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /2 keys but 1 values/);
  const usage = await kvstore(["read", "--port", port]);
  assert.equal(usage.code, 1);
  assert.match(usage.stderr, /usage: kvstore read <key>/);
  const closedPort = String(freePort());
  const refused = await kvstore(["read", "k", "--port", closedPort]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`kvstore at 127.0.0.1:${closedPort}: cannot connect`));
  const unknown = await kvstore(["frobnicate"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no known command in "frobnicate"; the commands are serve, put, /);
});

Deno.test("cli: serve --help lists every setting with its flag, default and environment variable", async () => {
  const help = await kvstore(["serve", "--help"]);
  assert.equal(help.code, 0);
  for (const row of describeSettings()) {
    assert.ok(help.stdout.includes(row.flag), row.flag);
    assert.ok(help.stdout.includes(`env: ${row.env}`), row.env);
  }
});

Deno.test("cli: serve refuses a bad setting, naming the value and the limit", async () => {
  const bad = await kvstore(["serve", "--max-connections", "0"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /MAX_CONNECTIONS: 0 is below the minimum 1/);
  const env = await kvstore(["serve"], { KVSTORE_FSYNC: "sometimes" });
  assert.equal(env.code, 1);
  assert.match(env.stderr, /KVSTORE_FSYNC.*not one of always, everysec, no/);
});

Deno.test("cli: serve reads KVSTORE_ variables, and flags win over them", async () => {
  await using server = await startServerProcess({
    env: { KVSTORE_MAX_RANGE_KEYS: "7", KVSTORE_MAX_PIPELINE_REQUESTS: "9" },
    args: ["--max-pipeline-requests", "11"],
  });
  await using client = new KVClient({ port: server.port });
  const config = await client.send(["CONFIG", "GET", "max-*"]) as Uint8Array[];
  const settings = Object.fromEntries(
    Array.from({ length: config.length / 2 }, (_, i) => [
      decoder.decode(config[2 * i]),
      decoder.decode(config[2 * i + 1]),
    ]),
  );
  assert.equal(settings["max-range-keys"], "7");
  assert.equal(settings["max-pipeline-requests"], "11");
});

/** Every descendant of process `pid`: its PID and command line. */
function descendants(pid: number): { pid: number; args: string }[] {
  const ps = new Deno.Command("ps", { args: ["-eo", "pid=,ppid=,args="] }).outputSync();
  const rows = decoder.decode(ps.stdout).trim().split("\n").map((line) => {
    const [, own, parent, args] = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line) ?? [];
    return { pid: Number(own), ppid: Number(parent), args };
  });
  const found: { pid: number; args: string }[] = [];
  const parents = new Set([pid]);
  // Bounded: each pass adds at least one process or stops.
  for (let added = true; added;) {
    added = false;
    for (const row of rows) {
      if (parents.has(row.ppid) && !parents.has(row.pid)) {
        parents.add(row.pid);
        found.push({ pid: row.pid, args: row.args });
        added = true;
      }
    }
  }
  return found;
}

/**
 * SIGKILLs `child` and every process under it: `deno task serve` runs the server two processes
 * down, and a SIGKILL of the task alone would leave that server running. Once `child` has exited
 * its PID is free for another process, so then nothing under it is looked for.
 */
async function killTree(child: Deno.ChildProcess, exited: boolean): Promise<void> {
  for (const { pid } of exited ? [] : descendants(child.pid)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Already exited.
    }
  }
  try {
    child.kill("SIGKILL");
  } catch {
    // Already exited.
  }
  await child.status;
}

Deno.test("cli: deno task serve --data-dir D runs with permissions that follow D", async () => {
  // A directory outside the working directory: the task's permissions must follow --data-dir.
  await withTempDir(async (dataDir) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "serve", "--port", "0", "--data-dir", dataDir],
      cwd: ROOT,
      env: { KVSTORE_LOG_FORMAT: "json" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let exited = false;
    child.status.then(() => exited = true);
    try {
      let log = "";
      let port: number | undefined;
      const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      const deadline = Date.now() + 20_000;
      while (port === undefined && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        log += value;
        port = Number(/"event":"listening","host":"[^"]*","port":(\d+)/.exec(log)?.[1]) ||
          undefined;
      }
      assert.ok(port !== undefined, log);
      await using client = new KVClient({ port });
      await client.put("task", "works");
      assert.equal(await client.read("task"), "works");
      // The server itself may touch nothing but its data directory.
      const server = descendants(child.pid).map(({ args }) => args)
        .find((args) => args.includes("cli.ts serve")) ?? "";
      assert.match(server, new RegExp(`--allow-write=${dataDir} `), server);
      assert.match(server, new RegExp(`--allow-read=${dataDir} `), server);
      // SIGTERM to the task reaches the server once: a graceful stop, exit 0.
      child.kill("SIGTERM");
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
        log += chunk.value;
      }
      assert.equal((await child.status).code, 0, log);
      assert.match(log, /"event":"stopped"/);
      assert.doesNotMatch(log, /second SIGTERM/);
    } finally {
      await killTree(child, exited);
    }
  }, "kvstore-task-");
});

Deno.test("cli: --help is short; each command has its own; serve --help has every setting", async () => {
  const top = await kvstore(["--help"]);
  assert.equal(top.code, 0);
  assert.ok(top.stdout.split("\n").length < 45, top.stdout);
  assert.match(top.stdout, /kvstore serve --help +every server setting/);
  assert.doesNotMatch(top.stdout, /--replication-queue-size/);
  for (const command of ["put", "read", "readrange", "batchput", "replicas", "inspect", "repair"]) {
    const help = await kvstore([command, "--help"]);
    assert.equal(help.code, 0, `${command}: ${help.stderr}`);
    assert.match(help.stdout, new RegExp(`^Usage: kvstore ${command} `), command);
    assert.equal(help.stderr, "");
  }
  assert.equal((await kvstore(["help", "put"])).stdout, (await kvstore(["put", "--help"])).stdout);
  const serve = await kvstore(["serve", "--help"]);
  assert.match(serve.stdout, /--fsync <always\|everysec\|no>\n/);
  assert.match(serve.stdout, /--data-dir <dir>\n/);
  assert.match(serve.stdout, /--replicas <host:port,\.\.\.>\n/);
  assert.match(serve.stdout, /--max-value-bytes <bytes>\n/);
  assert.match(serve.stdout, /--replica\n/);
  const unknown = await kvstore(["put", "k", "v", "--frob"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^kvstore: put: unknown option --frob \(see kvstore put --help/);
  assert.doesNotMatch(unknown.stderr, /positional/);
});

Deno.test("cli: --log-level takes the usual spellings (warn, WARNING, err)", async () => {
  const { loadConfig } = await import("../../src/config.ts");
  for (const [typed, level] of [["warn", "warning"], ["WARNING", "warning"], ["err", "error"]]) {
    assert.equal(loadConfig({ args: ["--log-level", typed], env: {} }).config.LOG_LEVEL, level);
  }
  // A real node at warn: it serves, and its info-level lines (the "listening" one) are not written.
  const port = freePort();
  await withTempDir(async (dataDir) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli.ts", "serve", "--log-level", "warn", "--port", String(port)],
      cwd: ROOT,
      env: { KVSTORE_DATA_DIR: dataDir },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      await using client = new KVClient({ port, timeoutMs: 1000 });
      let answered = false;
      // Bounded: 100 attempts, 100 ms apart.
      for (let i = 0; i < 100 && !answered; i++) {
        answered = await client.ping().then(() => true, () => false);
        if (!answered) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(answered, "the node started with --log-level warn never answered");
      child.kill("SIGTERM");
      const output = await child.output();
      assert.equal(output.code, 0);
      assert.doesNotMatch(decoder.decode(output.stderr), /listening on/);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited.
      }
      await child.status;
    }
  }, "kvstore-warn-");
});

Deno.test("cli: deno task serve refuses a path its permission list cannot hold, saying why", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "serve", "--port", "0", "--data-dir", "/tmp/kvstore,comma"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 1);
  assert.match(
    decoder.decode(output.stderr),
    /"\/tmp\/kvstore,comma" has a comma, which deno task/,
  );
  assert.equal(await Deno.stat("/tmp/kvstore,comma").then(() => true, () => false), false);
});
