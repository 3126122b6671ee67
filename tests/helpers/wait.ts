/**
 * Waiting for a condition in tests: bounded polling, never a fixed sleep that assumes speed (the
 * machine may be loaded by other suites).
 *
 * @module
 */

/** Waits until `check` is true, polling every 20 ms, at most `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}` + (lastError ? `: ${lastError}` : ""),
  );
}
