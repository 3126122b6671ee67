/**
 * Who hears a node's role changes: the events {@link RoleEvent} and the listeners that subscribed
 * to them (a coordinator reports its member record again, tests watch transitions). A listener
 * that throws is logged and the others still hear the event.
 *
 * @module
 */
import { getLog } from "../log.ts";

const log = getLog("replication");

/** A change of role or epoch, as `NodeRole.subscribe` listeners hear it. */
export type RoleEvent =
  /** Now a master of `epoch`; its data up to `lsn` kept. */
  | { kind: "promoted"; epoch: number; lsn: number; by: string }
  /** Now a replica (or re-pointed): it expects `master` (`host:port`, "" when not named). */
  | { kind: "following"; master: string; epoch: number; by: string }
  /** A newer master (`epoch`) exists: this master refuses writes. */
  | { kind: "deposed"; epoch: number; reason: string }
  /** The newest epoch this node knows rose to `epoch` (a HELLO, `REPLICAOF ... EPOCH`). */
  | { kind: "epoch"; epoch: number };

/** The listeners of one node's role events. */
export class RoleListeners {
  readonly #listeners = new Set<(event: RoleEvent) => void>();

  /** Calls `listener` after each event; returns the unsubscribe function. */
  subscribe(listener: (event: RoleEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tells every listener (those subscribed when it starts) of `event`. */
  emit(event: RoleEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        log.error("a role listener failed on {kind}: {error}", {
          kind: event.kind,
          error: String(error),
        });
      }
    }
  }
}
