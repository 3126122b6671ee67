/**
 * Runs the `kvstore` command line (`cli.ts`) as a child process, as a user would.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url);
const decoder = new TextDecoder();

/** What a run printed and its exit status. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `kvstore ...args` from the repository root; `stdin` is written to its standard input. */
export async function kvstore(
  args: string[],
  env: Record<string, string> = {},
  stdin?: Uint8Array,
): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", "--allow-write", "--allow-env", "cli.ts", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const output = await child.output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
