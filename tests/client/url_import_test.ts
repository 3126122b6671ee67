import assert from "node:assert/strict";
import { startTestServer } from "../helpers/test_server.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const ROOT = new URL("../../", import.meta.url);

/** Serves the repository's .ts files read-only on 127.0.0.1 (port 0); records what was fetched. */
function serveRepository(requested: string[]): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = new URL(request.url).pathname;
    requested.push(path);
    if (!path.endsWith(".ts") || path.includes("..")) {
      return new Response("not found", { status: 404 });
    }
    try {
      const body = await Deno.readFile(new URL(`.${path}`, ROOT));
      return new Response(body, { headers: { "content-type": "application/typescript" } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

Deno.test("mod.ts imports by URL with no config and no import map, and talks to a server", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  const requested: string[] = [];
  await using http = serveRepository(requested);
  await withTempDir(async (dir) => {
    const origin = `127.0.0.1:${http.addr.port}`;
    const script = `${dir}/client.ts`;
    await Deno.writeTextFile(
      script,
      `import { KVClient, KVServerError } from "http://${origin}/mod.ts";\n` +
        `await using client = new KVClient({ port: ${server.port} });\n` +
        `await client.put("url", "imported by URL");\n` +
        `console.log(await client.read("url"));\n` +
        `console.log(new KVServerError("ERR", "x") instanceof Error);\n`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-config",
        "--no-lock",
        `--allow-import=${origin}`,
        "--allow-net=127.0.0.1",
        script,
      ],
      cwd: dir,
      env: { DENO_DIR: `${dir}/deno_dir`, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.ok(output.success, stderr);
    assert.equal(new TextDecoder().decode(output.stdout), "imported by URL\ntrue\n");
    assert.ok(requested.includes("/mod.ts"));
    for (const path of requested) {
      assert.match(path, /^\/(mod\.ts|src\/(client|protocol|version|config|write_all)\b)/);
    }
  }, "kvstore-url-");
});
