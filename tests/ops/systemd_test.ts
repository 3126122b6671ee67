import assert from "node:assert/strict";
import { KVAuthError, KVClient } from "../../mod.ts";
import { loadConfig } from "../../src/config.ts";
import { readEnvFile } from "../helpers/env_file.ts";
import { hasCommand } from "../helpers/has_command.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const UNIT = new URL("../../scripts/kvstore.service", import.meta.url);
const ENV_FILE = new URL("../../scripts/kvstore.env", import.meta.url);

const canVerify = hasCommand("systemd-analyze");

Deno.test({
  name: "systemd unit passes systemd-analyze verify with no warnings",
  ignore: !canVerify,
  async fn() {
    await withTempDir(async (dir) => {
      // verify checks that ExecStart's program exists: point it at a stand-in executable.
      const binary = `${dir}/kvstore`;
      await Deno.writeTextFile(binary, "#!/bin/sh\nexit 0\n");
      await Deno.chmod(binary, 0o755);
      const unit = (await Deno.readTextFile(UNIT)).replaceAll("/usr/local/bin/kvstore", binary);
      await Deno.writeTextFile(`${dir}/kvstore.service`, unit);
      const result = await new Deno.Command("systemd-analyze", {
        args: ["verify", `${dir}/kvstore.service`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const output = new TextDecoder().decode(result.stdout) +
        new TextDecoder().decode(result.stderr);
      assert.equal(output.trim(), "", `systemd-analyze verify printed:\n${output}`);
      assert.ok(result.success);
    });
  },
});
if (!canVerify) console.log("skipped: systemd-analyze is not installed, the unit was not verified");

Deno.test("systemd unit stops gracefully and is hardened", async () => {
  const unit = await Deno.readTextFile(UNIT);
  for (
    const line of [
      "KillSignal=SIGTERM",
      "Restart=on-failure",
      "StateDirectory=kvstore",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "EnvironmentFile=-/etc/kvstore/kvstore.env",
      "LoadCredential=auth-token:/etc/kvstore/auth-token",
      "Environment=KVSTORE_AUTH_TOKEN_FILE=%d/auth-token",
    ]
  ) {
    assert.ok(unit.split("\n").includes(line), `missing ${line}`);
  }
  assert.ok(!/^MemoryDenyWriteExecute=yes/m.test(unit), "V8's JIT needs W+X pages");
});

Deno.test("the example environment file holds only valid kvstore settings", async () => {
  const env = await readEnvFile(ENV_FILE);
  assert.ok(Object.keys(env).length >= 3);
  const { config } = loadConfig({ env });
  assert.equal(config.FSYNC, "always");
  assert.equal(config.HOST, "127.0.0.1");
});

/** `KEY=value` pairs of the unit's `Environment=` lines. */
function unitEnvironment(unit: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of unit.split("\n")) {
    if (!line.startsWith("Environment=")) continue;
    for (const pair of line.slice("Environment=".length).split(" ")) {
      const eq = pair.indexOf("=");
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

Deno.test("the unit's settings and credential start a node that requires the token", async () => {
  const unit = await Deno.readTextFile(UNIT);
  await withTempDir(async (credentials) => {
    // What systemd does: copy the credential into %d and expand %d in Environment=.
    const token = "0123456789abcdef0123456789abcdef";
    await Deno.writeTextFile(`${credentials}/auth-token`, `${token}\n`);
    const env = unitEnvironment(unit);
    for (const [name, value] of Object.entries(env)) {
      env[name] = value.replaceAll("%d", credentials);
    }
    delete env.KVSTORE_DATA_DIR; // the test's own temporary directory instead of /var/lib
    await using server = await startServerProcess({ env });
    await using anonymous = new KVClient({ port: server.port, timeoutMs: 5000 });
    await assert.rejects(anonymous.read("k"), KVAuthError);
    await using client = new KVClient({ port: server.port, timeoutMs: 5000, token });
    await client.put("k", "v");
    assert.equal(await client.read("k"), "v");
  });
});
