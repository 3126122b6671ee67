/**
 * The cluster examples of the manual run exactly as written: each shell block after a
 * `<!-- runs as written in tests/docs_examples_test.ts -->` line runs in bash, in a fresh
 * directory, with `kvstore` on PATH being this source tree's CLI. The blocks use the docs' fixed ports
 * (5555, 5565, ...), so each runs in its own network and PID namespaces (`unshare`, as root), where
 * nobody else's port can collide and every process it starts ends with it. One liberty: `sleep 1` ("give them a second") waits until the
 * block's nodes listen, at most 30 s, because a loaded CI machine may take longer than a second.
 */
import assert from "node:assert/strict";
import { etcdMissing } from "./helpers/etcd.ts";
import { withTempDir } from "./helpers/temp_dir.ts";

const ROOT = new URL("../", import.meta.url);
const MARKER = "<!-- runs as written in tests/docs_examples_test.ts -->";

/** What each block must print, by the first words of its first line. */
const EXPECTED: Record<string, RegExp[]> = {
  "kvstore serve --port 5556 --data-dir ./replica1": [
    /^OK$/m,
    /^myvalue$/m,
    /^role:master$/m,
    /^replica0:address=localhost:5556,state=streaming,/m,
  ],
  "etcd --data-dir ./etcd-data": [
    /^OK$/m,
    /^cluster kvstore: leader n[123], epoch \d+$/m,
    /^n1 +(leader|replica) +127\.0\.0\.1:5571 /m,
    /^n3 +(leader|replica) +127\.0\.0\.1:5573 /m,
  ],
  "kvstore serve --port 5566 --data-dir ./f1": [
    /^OK$/m,
    /^127\.0\.0\.1:5566: PROMOTED epoch 1 lsn 1$/m,
    /^again$/m,
  ],
};

function canIsolate(): boolean {
  try {
    return new Deno.Command("unshare", {
      args: ["--net", "--pid", "--fork", "sh", "-c", "ip link set lo up"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

async function examples(): Promise<{ doc: string; block: string }[]> {
  const found: { doc: string; block: string }[] = [];
  for (const doc of ["docs/replication.md", "docs/operations.md", "docs/failover.md"]) {
    const text = await Deno.readTextFile(new URL(doc, ROOT));
    let at = text.indexOf(MARKER);
    // Bounded by the text: each step moves past one marker.
    while (at !== -1) {
      const start = text.indexOf("```sh\n", at) + "```sh\n".length;
      found.push({ doc, block: text.slice(start, text.indexOf("```\n", start)) });
      at = text.indexOf(MARKER, start);
    }
  }
  return found;
}

const isolated = canIsolate();
if (!isolated) {
  console.log(
    "skipped: the docs' examples use fixed ports; running them needs an isolated network " +
      "namespace (unshare --net as root, and ip from iproute2)",
  );
}

Deno.test({
  name: "docs: the replication setup and the failover steps run as written",
  ignore: !isolated,
  async fn() {
    const blocks = await examples();
    assert.equal(blocks.length, Object.keys(EXPECTED).length, "marked blocks vs expectations");
    const cli = new URL("cli.ts", ROOT).pathname;
    // Compiled once, so each node starts in well under a second.
    await new Deno.Command(Deno.execPath(), { args: ["run", "-A", cli, "--version"] }).output();
    for (const { doc, block } of blocks) {
      const key = Object.keys(EXPECTED).find((prefix) => block.startsWith(prefix));
      assert.ok(key !== undefined, `${doc}: no expectations for the block\n${block}`);
      const noEtcd = block.startsWith("etcd ") ? etcdMissing() : undefined;
      if (noEtcd !== undefined) {
        console.log(`skipped the example of ${doc}: ${noEtcd}`);
        continue;
      }
      const ports = [...block.matchAll(/serve --port (\d+)/g)].map((m) => m[1]);
      await withTempDir(async (dir) => {
        const script = `
set -u
ip link set lo up
mkdir -p "${dir}/bin"
printf '#!/bin/sh\nexec "%s" run -A "%s" "$@"\n' "${Deno.execPath()}" "${cli}" > "${dir}/bin/kvstore"
chmod +x "${dir}/bin/kvstore"
PATH="${dir}/bin:$PATH"
sleep() {
  for port in ${ports.join(" ")}; do
    for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; command sleep 0.1; done
  done
}
cd "${dir}"
${block}
status=$?
kill $(jobs -p) 2>/dev/null
wait
exit $status
`;
        // A PID namespace too: when bash ends (or is killed), the kernel kills every node it
        // started, whatever the block did.
        const output = await new Deno.Command("unshare", {
          args: ["--net", "--pid", "--fork", "--kill-child", "bash", "-c", script],
          signal: AbortSignal.timeout(120_000),
          env: { NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stdout = new TextDecoder().decode(output.stdout);
        const stderr = new TextDecoder().decode(output.stderr);
        for (const expected of EXPECTED[key]) {
          assert.match(
            stdout,
            expected,
            `${doc}:\n${block}\nstdout:\n${stdout}\nstderr:\n${stderr}`,
          );
        }
        assert.doesNotMatch(stderr, /^kvstore: /m, `${doc}: a command failed:\n${stderr}`);
      }, "kvstore-docs-example-");
    }
  },
});
