/**
 * docs/redis-compatibility.md's list of every Redis command agrees with the commands a kvstore
 * process has (`COMMAND LIST`): a command it has is `yes` or `partly` there, and a `yes` or
 * `partly` there is one it has.
 */
import assert from "node:assert/strict";
import { decodeReply, RawRespConnection } from "../helpers/resp3.ts";
import { startServerProcess } from "../helpers/server_process.ts";
import { CLUSTER_TEST } from "../helpers/cluster.ts";

const DOC = new URL("../../docs/redis-compatibility.md", import.meta.url);

/** The rows of the "Every command" section: upper-case name → status. */
function documentedCommands(text: string): Map<string, string> {
  const section = text.slice(text.indexOf("## Every command"), text.indexOf("## Protocol"));
  const rows = new Map<string, string>();
  for (const match of section.matchAll(/^\| `([A-Z0-9_|-]+)` +\| (\w+) +\|/gm)) {
    rows.set(match[1], match[2]);
  }
  return rows;
}

Deno.test({
  name: "docs/redis-compatibility.md lists every Redis command with the status kvstore has",
  ...CLUSTER_TEST,
  fn: async () => {
    const documented = documentedCommands(await Deno.readTextFile(DOC));
    assert.ok(documented.size > 200, `only ${documented.size} commands listed`);
    for (const status of documented.values()) {
      assert.ok(["yes", "partly", "no"].includes(status), status);
    }
    await using server = await startServerProcess({ args: ["--fsync", "no"] });
    await using conn = await RawRespConnection.open(server.port);
    await conn.send(["COMMAND", "LIST"]);
    const names = decodeReply(await conn.readReply());
    assert.ok(Array.isArray(names));
    const served = new Set(names.map((name) => String(name).toUpperCase()));
    const wrong: string[] = [];
    for (const name of served) {
      // kvstore's own commands (PUT, READRANGE, REPLICATE, ...) are not Redis's.
      const status = documented.get(name);
      if (status !== undefined && status !== "yes" && status !== "partly") {
        wrong.push(`kvstore has ${name}; the table says "${status}"`);
      }
    }
    for (const [name, status] of documented) {
      if ((status === "yes" || status === "partly") && !served.has(name)) {
        wrong.push(`the table says ${name} is "${status}", but kvstore lacks it`);
      }
    }
    assert.deepEqual(wrong, []);
  },
});
