/**
 * Values as people give them to the command line: from standard input (`-`, `-x`) or a file
 * (`--value-file`), commas inside `batchput` items, and `--json` output that newlines and binary
 * bytes cannot make ambiguous.
 */
import assert from "node:assert/strict";
import { KVClient } from "../../mod.ts";
import { splitCommaList } from "../../src/cli/client_commands.ts";
import { kvstore } from "../helpers/cli.ts";
import { startTestServer } from "../helpers/test_server.ts";
import { withTempDir } from "../helpers/temp_dir.ts";

Deno.test("cli values: put takes a value larger than a command line from stdin or a file, byte for byte", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  const port = String(server.port);
  await using client = new KVClient({ port: server.port });
  // 300 KiB with NUL bytes, newlines and bytes that are not UTF-8: beyond ~128 KiB, the most one
  // command-line argument may hold on Linux.
  const big = new Uint8Array(300 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 256;
  assert.deepEqual(await kvstore(["put", "from-dash", "-", "--port", port], {}, big), {
    code: 0,
    stdout: "OK\n",
    stderr: "",
  });
  assert.deepEqual(await client.readBytes("from-dash"), big);
  const text = new TextEncoder().encode("line 1\nline 2\n");
  assert.equal((await kvstore(["put", "-x", "from-x", "--port", port], {}, text)).code, 0);
  assert.deepEqual(await client.readBytes("from-x"), text);
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/value.bin`, big);
    const fromFile = await kvstore([
      "put",
      "from-file",
      "--value-file",
      `${dir}/value.bin`,
      "--port",
      port,
    ]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.deepEqual(await client.readBytes("from-file"), big);
    const missing = await kvstore(["put", "k", "--value-file", `${dir}/nope`, "--port", port]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /--value-file: cannot read .*nope/);
  });
  // A value and a --value-file at once is a mistake, not a silent choice.
  const both = await kvstore(["put", "k", "v", "--value-file", "x", "--port", port]);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /usage: kvstore put <key> \(<value> \| - \| --value-file <file>\)/);
  // An empty standard input stores an empty value (as redis-cli -x does).
  assert.equal(
    (await kvstore(["put", "empty", "-", "--port", port], {}, new Uint8Array()))
      .code,
    0,
  );
  assert.equal(await client.read("empty"), "");
});

Deno.test("cli values: batchput takes \\, for a comma inside a key or value", async () => {
  assert.deepEqual(splitCommaList("a\\,b,c"), ["a,b", "c"]);
  assert.deepEqual(splitCommaList("ends in \\\\,x"), ["ends in \\", "x"]);
  assert.deepEqual(splitCommaList("C:\\dir"), ["C:\\dir"]);
  await using server = await startTestServer({ FSYNC: "no" });
  const port = String(server.port);
  await using client = new KVClient({ port: server.port });
  const result = await kvstore(["batchput", "price,label", "3\\,50,a\\, b", "--port", port]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(await client.read("price"), "3,50");
  assert.equal(await client.read("label"), "a, b");
  // The case: one key meant to hold "a,b" is refused with the way out, not split.
  const mismatch = await kvstore(["batchput", "c1", "a,b", "--port", port]);
  assert.equal(mismatch.code, 1);
  assert.match(
    mismatch.stderr,
    /1 keys but 2 values \(a comma inside a key or value is written \\,\)/,
  );
  assert.equal(await client.read("c1"), undefined);
});

Deno.test("cli values: read and readrange --json are unambiguous for newlines, tabs and bytes", async () => {
  await using server = await startTestServer({ FSYNC: "no" });
  const port = String(server.port);
  await using client = new KVClient({ port: server.port });
  await client.put("a", "two\nlines");
  await client.put("b", "tab\there");
  await client.put("c", new Uint8Array([0xff, 0x00, 0x41]));
  const plain = await kvstore(["readrange", "a", "b", "--port", port]);
  assert.equal(plain.stdout, "a\ttwo\nlines\nb\ttab\there\n"); // the ambiguous default
  const json = await kvstore(["readrange", "a", "c", "--json", "--port", port]);
  assert.equal(json.code, 0, json.stderr);
  const lines = json.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(lines, [
    { key: "a", value: "two\nlines" },
    { key: "b", value: "tab\there" },
    { key: "c", value_base64: btoa("\xff\x00\x41") },
  ]);
  const read = await kvstore(["read", "a", "--json", "--port", port]);
  assert.deepEqual(JSON.parse(read.stdout), { key: "a", value: "two\nlines" });
  const missing = await kvstore(["read", "zz", "--json", "--port", port]);
  assert.equal(missing.code, 2);
  // --json belongs to read commands only.
  const wrong = await kvstore(["put", "k", "v", "--json", "--port", port]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /put takes no --json/);
});
