/**
 * The version of kvstore, printed by `kvstore --version` and reported by `INFO server`.
 * Kept in step with `deno.json` by `tests/version_test.ts`.
 *
 * @module
 */

/** Semantic version of this release. */
export const VERSION = "0.1.0";
