/**
 * Reads a systemd `EnvironmentFile` of kvstore settings (`scripts/*.env`): `KVSTORE_X=value` lines,
 * blank lines and `#` comments; anything else fails the test that reads it.
 *
 * @module
 */
import assert from "node:assert/strict";

/** The `KVSTORE_*` variables of the environment file at `url`. */
export async function readEnvFile(url: URL): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const line of (await Deno.readTextFile(url)).split("\n")) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const eq = trimmed.indexOf("=");
    assert.ok(eq > 0 && trimmed.startsWith("KVSTORE_"), `not a KVSTORE_ setting: ${trimmed}`);
    env[trimmed.slice(0, eq)] = trimmed.slice(eq + 1);
  }
  return env;
}
