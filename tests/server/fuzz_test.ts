import assert from "node:assert/strict";
import { startServerProcess } from "../helpers/server_process.ts";
import { prng } from "../helpers/random.ts";
import { resp, WireClient } from "../helpers/wire.ts";

const encoder = new TextEncoder();

/** Inputs that have broken servers before: each is sent alone on a fresh connection. */
function nastyInputs(random: () => number): Uint8Array[] {
  const inputs: Uint8Array[] = [
    encoder.encode(`PUT k ${"x".repeat(300_000)}\n`), // a line past the limit
    encoder.encode("y".repeat(300_000)), // a huge line that never ends
    encoder.encode("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nshort"), // truncated bulk
    encoder.encode("*2\r\n$3\r\nGET"), // truncated header
    encoder.encode("*-5\r\n*0\r\n*1\r\n$-1\r\n"),
    encoder.encode("*1\r\n$999999999999\r\n"),
    encoder.encode("*99999999\r\n"),
    new Uint8Array([0xff, 0xfe, 0xfd, 0x0a, 0xc3, 0x28, 0x20, 0x0a]), // invalid UTF-8
    encoder.encode("\u00e9T\u00c9 k\nREAD\u0000 k\nreadrange\nBATCHPUT a||b\n\r\n\n"),
    resp("REPLICATE", "LOG", new Uint8Array([1, 2, 3])),
    resp(new Uint8Array([0xff, 0xfe]), "x"),
    encoder.encode("REPLICATE BATCHPUT a||b 1\nREPLICATE FOO\nCONFIG SET x y\nCOMMAND\n"),
  ];
  for (let i = 0; i < 40; i++) {
    const bytes = new Uint8Array(1 + Math.floor(random() * 4000));
    for (let j = 0; j < bytes.length; j++) {
      bytes[j] = random() < 0.15
        ? [10, 13, 32, 36, 42, 45, 48, 124][Math.floor(random() * 8)]
        : Math.floor(random() * 256);
    }
    inputs.push(bytes);
  }
  return inputs;
}

Deno.test("fuzz: garbage never crashes the server and other connections never notice", async () => {
  await using server = await startServerProcess({
    args: ["--max-request-bytes", "65536", "--max-key-bytes", "1024", "--fsync", "no"],
  });
  await using bystander = await WireClient.connect(server.port);
  await bystander.send("PUT steady 1\n");
  assert.equal(await bystander.readLine(), "OK");
  const random = prng(424242);
  for (const input of nastyInputs(random)) {
    const wire = await WireClient.connect(server.port);
    try {
      for (let i = 0; i < input.length; i += 65536) await wire.send(input.subarray(i, i + 65536));
    } catch {
      // The server may close a connection whose framing broke; that is allowed.
    }
    wire.close();
    await bystander.send("READ steady\n");
    assert.equal(await bystander.readLine(), "1");
  }
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(!server.logs.some((line) => line.level === "FATAL" || line.level === "ERROR"));
});
