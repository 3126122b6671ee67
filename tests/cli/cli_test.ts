import assert from "node:assert/strict";
import { describeSettings } from "../../src/config.ts";
import { KVClient } from "../../mod.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { startTestServer } from "../helpers/test_server.ts";

const ROOT = new URL("../../", import.meta.url);
const decoder = new TextDecoder();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function kvstore(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", "--allow-write", "--allow-env", "cli.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

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
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = String((listener.addr as Deno.NetAddr).port);
  listener.close();
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

Deno.test("cli: deno task serve runs with its narrow permissions and stops on SIGTERM", async () => {
  const dataDir = `./kvstore_data/test-${crypto.randomUUID()}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "serve"],
    cwd: ROOT,
    env: { KVSTORE_PORT: "0", KVSTORE_LOG_FORMAT: "json", KVSTORE_DATA_DIR: dataDir },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  try {
    let log = "";
    let port: number | undefined;
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    const deadline = Date.now() + 20_000;
    while (port === undefined && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      log += value;
      port = Number(/"event":"listening","host":"[^"]*","port":(\d+)/.exec(log)?.[1]) || undefined;
    }
    assert.ok(port !== undefined, log);
    await using client = new KVClient({ port });
    await client.put("task", "works");
    assert.equal(await client.read("task"), "works");
    child.kill("SIGTERM");
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      log += chunk.value;
    }
    assert.equal((await child.status).code, 0);
    assert.match(log, /"event":"stopped"/);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await Deno.remove(new URL(dataDir, ROOT), { recursive: true }).catch(() => {});
    await Deno.remove(new URL("./kvstore_data", ROOT)).catch(() => {});
  }
});
