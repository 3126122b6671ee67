/**
 * A replica's bound on stale reads (`REPLICA_MAX_STALENESS_MS`): past it, reads get a retryable
 * `-MASTERDOWN` instead of data that may be that old. Redis's `replica-serve-stale-data no` and
 * PostgreSQL's `max_standby_streaming_delay` are the anchors: Redis refuses every command but a
 * few while the master link is down; here a replica refuses once its data _may be older_ than
 * the bound (the link down that long, or that far behind while up), so a master that blinks
 * costs no refused read, and a replica that falls behind refuses as one whose link is down.
 *
 * @module
 */
import type { Reply } from "../protocol/mod.ts";
import type { CommandSpec } from "../server/hooks.ts";
import type { LinkFacts } from "./follower.ts";

/**
 * Commands a stale replica still serves: they read no data (connection, introspection, roles,
 * the replication stream itself), as Redis's `stale` flag marks them, plus `PING` (the clients'
 * health probe). Writes get `READONLY` as always; any other command, one added later included,
 * is taken for a read and refused: a new command errs on the safe side.
 */
export const STALE_OK_COMMANDS: ReadonlySet<string> = new Set([
  "AUTH",
  "CHALLENGE",
  "PROVE",
  "HELLO",
  "PING",
  "ECHO",
  "QUIT",
  "RESET",
  "SELECT",
  "CLIENT",
  "COMMAND",
  "CONFIG",
  "INFO",
  "ROLE",
  "TOPOLOGY",
  "TIME",
  "REPLICAOF",
  "SLAVEOF",
  "PROMOTE",
  "REPLICAS",
  "WAIT",
  "MULTI",
  "DISCARD",
  "WATCH",
  "UNWATCH",
  "SHUTDOWN",
  "CLUSTER",
  "FAILOVER",
]);

/**
 * Decides, per command, whether a replica serves it despite its staleness, and counts what it
 * refused (`INFO replication`'s `stale_reads_refused`).
 *
 * @example
 * ```ts
 * import { StaleReadGate } from "./stale_reads.ts";
 * const gate = new StaleReadGate(5000);
 * const refusal = gate.refusal("GET", { minArgs: 1, maxArgs: 1, handler: () => {} }, {
 *   status: "down",
 *   stalenessMs: 12_000,
 *   lastIoMs: 12_000,
 * });
 * console.log(refusal?.type, gate.refused); // error 1
 * ```
 */
export class StaleReadGate {
  /** Reads refused since start. */
  refused = 0;

  /** `maxStalenessMs`: `REPLICA_MAX_STALENESS_MS` (0: never refuse). */
  constructor(readonly maxStalenessMs: number) {}

  /**
   * The refusal of command `name` on a replica whose link is `link` now, or undefined when it
   * is served. Call it on replicas only.
   */
  refusal(
    name: string,
    spec: CommandSpec,
    link: Pick<LinkFacts, "status" | "stalenessMs" | "lastIoMs">,
  ): Reply | undefined {
    if (this.maxStalenessMs === 0 || link.stalenessMs <= this.maxStalenessMs) return undefined;
    if (spec.write === true || spec.admin === true || STALE_OK_COMMANDS.has(name)) return undefined;
    this.refused++;
    return {
      type: "error",
      code: "MASTERDOWN",
      message: refusalMessage(this.maxStalenessMs, link),
    };
  }
}

function refusalMessage(
  maxStalenessMs: number,
  link: Pick<LinkFacts, "status" | "stalenessMs" | "lastIoMs">,
): string {
  const bound = `REPLICA_MAX_STALENESS_MS ${maxStalenessMs}`;
  const why = link.status === "up"
    ? `Link with MASTER is up but this replica is ${link.stalenessMs} ms behind`
    : link.lastIoMs < 0
    ? "Link with MASTER is down and no master has been heard from since this replica started"
    : `Link with MASTER is down and this replica's data may be ${link.stalenessMs} ms old ` +
      `(last contact ${(link.lastIoMs / 1000).toFixed(1)} s ago)`;
  return `${why}, past ${bound}; read from the master or retry`;
}
