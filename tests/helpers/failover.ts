/**
 * Runs scripts/failover.sh as the docs do (`scripts/failover.sh ...`: it needs the executable bit
 * and the shebang), with `KVSTORE` set to this tree's `cli.ts`.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url);
const decoder = new TextDecoder();

/** What a run of the script printed, its exit status and how long it took. */
export interface FailoverRun {
  code: number;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** Runs `scripts/failover.sh ...args` with `env` (e.g. `KVSTORE_AUTH_TOKEN`) added. */
export async function runFailoverScript(
  args: string[],
  env: Record<string, string> = {},
): Promise<FailoverRun> {
  const started = performance.now();
  const output = await new Deno.Command(new URL("scripts/failover.sh", ROOT).pathname, {
    args,
    cwd: ROOT,
    env: {
      KVSTORE: `${Deno.execPath()} run -A ${new URL("cli.ts", ROOT).pathname}`,
      NO_COLOR: "1",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
    elapsedMs: performance.now() - started,
  };
}
