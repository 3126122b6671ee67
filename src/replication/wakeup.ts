/**
 * Wakes a sleeping loop early (a replica link's sender), without a timer per wait.
 *
 * @module
 */

/** Wakes a sleeping loop early; a wake with nobody waiting is remembered once. */
export class Wakeup {
  #wake: (() => void) | undefined;
  #pending = false;

  notify(): void {
    const wake = this.#wake;
    if (wake === undefined) {
      this.#pending = true;
      return;
    }
    this.#wake = undefined;
    wake();
  }

  /** Drops a remembered wake (stale once the loop that was to see it has moved on). */
  forget(): void {
    this.#pending = false;
  }

  /**
   * Resolves at the next {@link notify} (or at once for a remembered one), or after `ms`. Without
   * `ms` no timer is made: the sender waits that way once per write, and a timer each time cost
   * measurably per write (docs/ARCHITECTURE.md, "Measured costs"); the caller must then know that
   * something will notify (the watchdog while replies are due, the ping timer when idle).
   */
  wait(ms?: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    if (ms === undefined) return new Promise((resolve) => (this.#wake = resolve));
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, Math.max(0, ms));
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
