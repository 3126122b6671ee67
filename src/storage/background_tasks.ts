/**
 * The store's background work: tasks it runs while serving (hint writes, automatic compaction),
 * whose failures are logged and which `close()` waits for, and the yield between two bounded
 * steps of a long job.
 *
 * @module
 */
import { getLog } from "../log.ts";

const log = getLog("storage");

/** Tasks running in the background (hint writes, automatic compaction); failures are logged. */
export class BackgroundTasks {
  #tasks = new Set<Promise<void>>();

  run(task: Promise<unknown>): void {
    const tracked = task.then(() => {}, (error) => {
      log.error("background storage task failed: {error}", { error: String(error) });
    });
    this.#tasks.add(tracked);
    tracked.finally(() => this.#tasks.delete(tracked));
  }

  /** Resolves once every task running now has settled. */
  async settled(): Promise<void> {
    await Promise.all(this.#tasks);
  }
}

/** Lets requests run between two bounded steps of a long job (compaction, a hint's walk). */
export function yieldToRequests(): Promise<void> {
  // setTimeout, not setImmediate: setImmediate lets almost no network I/O in
  // (docs/ARCHITECTURE.md, "Compaction works in bounded steps").
  return new Promise((resolve) => setTimeout(resolve, 0));
}
