/**
 * The version of kvstore, printed by `kvstore --version` and reported by `INFO server`.
 * `VERSION` is kept in step with `deno.json` by `tests/version_test.ts`; the build stamp is set
 * by the entry point that `scripts/compile.ts` generates for compiled executables.
 *
 * @module
 */

/**
 * Semantic version of this release.
 *
 * @example
 * ```ts
 * import { VERSION } from "./version.ts";
 * console.log(VERSION); // e.g. 0.1.0
 * ```
 */
export const VERSION = "0.1.0";

/** Where a running kvstore came from: a compiled build, or the source tree. */
export interface BuildInfo {
  /** Git commit the executable was built from, or "source" when run from the source tree. */
  commit: string;
  /** UTC date of the build (YYYY-MM-DD), or "" when run from source. */
  date: string;
}

let build: BuildInfo = { commit: "source", date: "" };

/** Records the build stamp; called once by a compiled executable's entry point. */
export function setBuildInfo(info: BuildInfo): void {
  build = { ...info };
}

/** The build stamp of this process. */
export function buildInfo(): BuildInfo {
  return { ...build };
}

/**
 * The line `kvstore --version` prints.
 *
 * @example
 * ```ts
 * import { versionText } from "./version.ts";
 * console.log(versionText()); // kvstore 0.1.0 (source, deno 2.9.6, x86_64-unknown-linux-gnu)
 * ```
 */
export function versionText(): string {
  const stamp = build.commit === "source" ? "source" : `build ${build.commit} ${build.date}`;
  return `kvstore ${VERSION} (${stamp}, deno ${Deno.version.deno}, ${Deno.build.target})`;
}
