/**
 * Temporary directories for tests: made fresh, removed afterwards whatever the test did.
 *
 * @module
 */

/** Runs `body` with a fresh temporary directory, removed afterwards (also when `body` throws). */
export async function withTempDir<T>(
  body: (dir: string) => T | Promise<T>,
  prefix = "kvstore-test-",
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
