/**
 * What a link logs about its replica's failed attempts: each one while the replica is healthy,
 * one error when it is marked unhealthy, then (it is probed every `retryDelayMs`, a second by
 * default) one line per health-check interval with the count. The clock is passed in.
 *
 * @module
 */
import type { ReplicaNode } from "./replica_node.ts";

/** The two levels a failure report writes at (a LogTape `Logger` has both). */
export interface FailureLog {
  warn(message: string, properties: Record<string, unknown>): void;
  error(message: string, properties: Record<string, unknown>): void;
}

/** Logs one replica's failed attempts; see the module comment. */
export class FailureReport {
  readonly #log: FailureLog;
  readonly #nowMs: () => number;
  /** When an unhealthy replica's failures were last logged (once per health-check interval). */
  #downReportedMs = 0;

  constructor(log: FailureLog, nowMs: () => number) {
    this.#log = log;
    this.#nowMs = nowMs;
  }

  /** Logs a failed attempt of `node`'s (after `ReplicaNode.markFailure`), or stays quiet. */
  failed(node: ReplicaNode, reason: string, retryDelayMs: number, becameUnhealthy: boolean): void {
    const log = this.#log;
    const fields = {
      replica: node.address,
      reason,
      retryDelayMs,
      failures: node.consecutiveFailures,
      maxFailures: node.policy.maxFailures,
      intervalMs: node.policy.healthCheckIntervalMs,
    };
    if (becameUnhealthy) {
      log.error(
        "replica {replica} marked unhealthy after {failures} consecutive failures ({reason}); " +
          "probing it every {retryDelayMs} ms, reported every {intervalMs} ms",
        fields,
      );
      this.#downReportedMs = this.#nowMs();
      return;
    }
    if (!node.healthy) {
      if (this.#nowMs() - this.#downReportedMs < node.policy.healthCheckIntervalMs) return;
      this.#downReportedMs = this.#nowMs();
      log.warn(
        "replica {replica} still down after {failures} consecutive failures: {reason}; " +
          "probing it every {retryDelayMs} ms",
        fields,
      );
      return;
    }
    log.warn(
      "replica {replica} failed: {reason}; next attempt in {retryDelayMs} ms " +
        "(consecutive failures: {failures}, unhealthy at {maxFailures})",
      fields,
    );
  }
}
