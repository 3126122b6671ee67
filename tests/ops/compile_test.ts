import assert from "node:assert/strict";
import { COMPILE_PERMISSIONS, compileArgs, TARGETS } from "../../scripts/compile.ts";
import { VERSION } from "../../src/version.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

const ROOT = new URL("../../", import.meta.url);

async function run(args: string[], cwd = ROOT): Promise<{ code: number; out: string }> {
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: result.code, out: decoder.decode(result.stdout) + decoder.decode(result.stderr) };
}

Deno.test("compile --dry-run prints one deno compile per target and a stamped entry", async () => {
  await withTempDir(async (dir) => {
    const { code, out } = await run([
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-env",
      "scripts/compile.ts",
      "--dry-run",
      "--output-dir",
      dir,
    ]);
    assert.equal(code, 0, out);
    const commands = out.trim().split("\n").filter((line) => line.startsWith("deno compile"));
    assert.equal(commands.length, TARGETS.length);
    for (const target of TARGETS) {
      assert.ok(commands.some((c) => c.includes(`--output ${dir}/kvstore-${target}`)), target);
    }
    // The generated entry, run from source with the baked-in permissions, prints the stamp.
    const version = await run([
      "run",
      ...COMPILE_PERMISSIONS,
      "--config",
      "deno.json",
      `${dir}/.build/kvstore.ts`,
      "--version",
    ]);
    assert.equal(version.code, 0, version.out);
    assert.match(version.out, new RegExp(`^kvstore ${VERSION} \\(build ([0-9a-f]{7,}|unknown) `));
    assert.match(version.out, /\d{4}-\d{2}-\d{2}, deno /);
  });
});

Deno.test("compile arguments bake in permissions and name the output after the target", () => {
  const args = compileArgs("entry.ts", "aarch64-apple-darwin", "dist");
  assert.deepEqual(args.slice(0, 1 + COMPILE_PERMISSIONS.length), [
    "compile",
    ...COMPILE_PERMISSIONS,
  ]);
  assert.ok(args.includes("dist/kvstore-aarch64-apple-darwin"));
  assert.ok(!args.includes("--allow-all") && !args.includes("-A"));
});

const denort = Deno.env.get("DENORT_BIN");
Deno.test({
  name: "the compiled executable serves, writes and reads (needs DENORT_BIN)",
  ignore: denort === undefined,
  async fn() {
    await withTempDir(async (dir) => {
      const host = Deno.build.target;
      const build = await run([
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        "--allow-env",
        "scripts/compile.ts",
        "--target",
        host,
        "--output-dir",
        dir,
      ]);
      assert.equal(build.code, 0, build.out);
      const binary = `${dir}/kvstore-${host}`;
      const version = await new Deno.Command(binary, { args: ["--version"], stdout: "piped" })
        .output();
      assert.match(new TextDecoder().decode(version.stdout), new RegExp(`kvstore ${VERSION}`));
      const server = new Deno.Command(binary, {
        args: ["serve", "--port", "0", "--data-dir", `${dir}/data`, "--log-format", "json"],
        stderr: "piped",
        stdout: "null",
      }).spawn();
      try {
        const port = await readListeningPort(server.stderr);
        const put = await new Deno.Command(binary, {
          args: ["put", "--port", String(port), "greeting", "hello world"],
        }).output();
        assert.equal(put.code, 0);
        const read = await new Deno.Command(binary, {
          args: ["read", "--port", String(port), "greeting"],
          stdout: "piped",
        }).output();
        assert.equal(new TextDecoder().decode(read.stdout).trim(), "hello world");
      } finally {
        server.kill("SIGTERM");
        await server.status;
      }
    });
  },
});
if (denort === undefined) {
  console.log(
    "skipped: the compiled-binary test needs DENORT_BIN (deno compile cannot download its " +
      "denort runtime here); set DENORT_BIN=/path/to/denort to run it",
  );
}

async function readListeningPort(stream: ReadableStream<Uint8Array>): Promise<number> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stream) {
    text += decoder.decode(chunk, { stream: true });
    for (const line of text.split("\n")) {
      if (!line.startsWith("{")) continue;
      const record = JSON.parse(line);
      if (record.properties?.event === "listening") {
        stream.cancel();
        return record.properties.port;
      }
    }
  }
  throw new Error(`the server exited before listening:\n${text}`);
}
