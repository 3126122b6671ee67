/**
 * Whether a tool a test needs is installed (a test that needs it skips itself otherwise).
 *
 * @module
 */

/** True when `name --version` runs. */
export function hasCommand(name: string): boolean {
  try {
    return new Deno.Command(name, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}
