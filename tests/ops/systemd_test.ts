import assert from "node:assert/strict";
import { loadConfig } from "../../src/config.ts";

const UNIT = new URL("../../scripts/kvstore.service", import.meta.url);
const ENV_FILE = new URL("../../scripts/kvstore.env", import.meta.url);

function hasCommand(name: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${name}`] }).outputSync().success;
  } catch {
    return false;
  }
}

const canVerify = hasCommand("systemd-analyze");

Deno.test({
  name: "systemd unit passes systemd-analyze verify with no warnings",
  ignore: !canVerify,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
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
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
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
    ]
  ) {
    assert.ok(unit.split("\n").includes(line), `missing ${line}`);
  }
  assert.ok(!/^MemoryDenyWriteExecute=yes/m.test(unit), "V8's JIT needs W+X pages");
});

Deno.test("the example environment file holds only valid kvstore settings", async () => {
  const env: Record<string, string> = {};
  for (const line of (await Deno.readTextFile(ENV_FILE)).split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const eq = trimmed.indexOf("=");
    assert.ok(eq > 0 && trimmed.startsWith("KVSTORE_"), `not a KVSTORE_ setting: ${trimmed}`);
    env[trimmed.slice(0, eq)] = trimmed.slice(eq + 1);
  }
  assert.ok(Object.keys(env).length >= 3);
  const { config } = loadConfig({ env });
  assert.equal(config.FSYNC, "always");
  assert.equal(config.HOST, "127.0.0.1");
});
