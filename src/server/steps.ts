/**
 * Work in bounded steps: a request over many keys (an MGET of 200,000 keys) must not hold the
 * event loop for its whole length while other connections wait. It runs for at most
 * `REQUEST_STEP_MS`, then yields with `setTimeout(0)` (measured here: a `setImmediate` or a
 * message-channel turn lets almost no network I/O in, a timer turn lets every ready connection
 * run), and goes on. Between steps the caller reports what its reply holds so far
 * (`CommandContext.stepDone`), so a reply being built counts against MAX_CLIENT_MEMORY_BYTES
 * before it is done, and stops when its connection was closed.
 *
 * @module
 */
import { CommandError } from "./hooks.ts";

/** Items handled between two looks at the clock (and the size below which nothing yields). */
export const STEP_CHECK_ITEMS = 256;

/** Lets every other ready connection run once. */
export function yieldToOthers(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Runs `work(from, to)` over the items `[0, count)` in slices of {@link STEP_CHECK_ITEMS},
 * yielding to other connections whenever `stepMs` of work went by.
 *
 * @example
 * ```ts
 * import { runInSteps } from "./steps.ts";
 * let sum = 0;
 * await runInSteps(1000, 2, (from, to) => {
 *   for (let i = from; i < to; i++) sum += i;
 * });
 * console.log(sum); // 499500
 * ```
 */
export async function runInSteps(
  count: number,
  stepMs: number,
  work: (from: number, to: number) => void,
  between: () => boolean = () => true,
): Promise<void> {
  let deadline = performance.now() + stepMs;
  for (let from = 0; from < count;) {
    const to = Math.min(count, from + STEP_CHECK_ITEMS);
    work(from, to);
    from = to;
    if (from < count && performance.now() >= deadline) {
      if (!between()) throw new StepsAbandoned();
      await yieldToOthers();
      deadline = performance.now() + stepMs;
    }
  }
}

/** Thrown when `between` says to stop (the connection is gone): nobody reads the reply. */
export class StepsAbandoned extends CommandError {
  override name = "StepsAbandoned";
  constructor() {
    super("the connection closed while its request ran in steps");
  }
}

/**
 * Calls `step()` until it returns true, yielding to other connections whenever `stepMs` of work
 * went by (each call should be short: a page of a range); `between()` runs before each yield.
 */
export async function repeatInSteps(
  stepMs: number,
  step: () => boolean,
  between: () => boolean = () => true,
): Promise<void> {
  let deadline = performance.now() + stepMs;
  while (!step()) {
    if (performance.now() >= deadline) {
      if (!between()) throw new StepsAbandoned();
      await yieldToOthers();
      deadline = performance.now() + stepMs;
    }
  }
}
