/**
 * Logging of bounds being hit. A bound hit is never silent, but a client hammering one must not
 * flood the log either: the first hit of each bound is logged with its setting and number, later
 * hits within the interval are only counted, and the next line after the interval says how many
 * were not logged.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";

interface LimitState {
  lastLoggedMs: number;
  unlogged: number;
}

/** Options of a {@link LimitLog}. */
export interface LimitLogOptions {
  /** Quiet period after a logged hit of one setting. */
  intervalMs?: number;
  /** Clock, for tests. */
  nowMs?: () => number;
}

/** Logs hits of configured bounds, once per setting per interval. */
export class LimitLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #nowMs: () => number;
  readonly #states = new Map<string, LimitState>();

  constructor(log: Logger, options: LimitLogOptions = {}) {
    this.#log = log;
    this.#intervalMs = options.intervalMs ?? 60_000;
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /**
   * Records one hit of `setting` (whose bound is `limit`). `message` describes what happened and
   * may name `{properties}`; it is logged now unless this setting was logged within the interval.
   */
  hit(
    setting: string,
    limit: number,
    message: string,
    properties: Record<string, unknown> = {},
  ): void {
    const unlogged = this.#due(setting);
    if (unlogged === undefined) return;
    const suffix = unlogged > 0
      ? ` ({unlogged} more hits of ${setting} since the last report)`
      : ` (logged once per ${Math.round(this.#intervalMs / 1000)} s)`;
    this.#log.warn(`${message}: ${setting} is {limit}${suffix}`, {
      ...properties,
      event: "limit",
      setting,
      limit,
      unlogged,
    });
  }

  /**
   * Logs something a peer can repeat at will (a bad request, a failing command): the first time
   * and then once per interval per `kind`, at `level`, saying how many went unlogged meanwhile.
   */
  note(
    kind: string,
    level: "warning" | "error",
    message: string,
    properties: Record<string, unknown> = {},
  ): void {
    const unlogged = this.#due(`note:${kind}`);
    if (unlogged === undefined) return;
    const suffix = unlogged > 0
      ? ` ({unlogged} more since the last report)`
      : ` (logged once per ${Math.round(this.#intervalMs / 1000)} s)`;
    const record = { ...properties, event: kind, unlogged };
    if (level === "error") this.#log.error(message + suffix, record);
    else this.#log.warn(message + suffix, record);
  }

  /** Undefined within the quiet interval of `key` (counted); else the count missed since. */
  #due(key: string): number | undefined {
    const now = this.#nowMs();
    const state = this.#states.get(key);
    if (state !== undefined && now - state.lastLoggedMs < this.#intervalMs) {
      state.unlogged++;
      return undefined;
    }
    this.#states.set(key, { lastLoggedMs: now, unlogged: 0 });
    return state?.unlogged ?? 0;
  }
}
