/**
 * The rules of a node's role changes, pure (facts in, a decision or a {@link RoleChangeError}
 * out): what a promotion needs and which epoch it takes, which epoch a node may follow, what a
 * replica's `STALEEPOCH` refusal means for this node, and the replicas a promoted node starts
 * with. `NodeRole` asks these first, then carries the change out.
 *
 * @module
 */
import { formatHostPort, type HostPort } from "../config.ts";
import { MAX_EPOCH } from "../storage/mod.ts";

/** A role change was refused: the node is not in a state that allows it. */
export class RoleChangeError extends Error {
  override name = "RoleChangeError";
}

/** What a promotion is checked against. */
export interface PromotionFacts {
  /** A role change (a promotion or a demotion) is running. */
  changing: boolean;
  /** The node is a replica now. */
  replica: boolean;
  /** The epoch of the node's own records (named when it is a master already). */
  ownEpoch: number;
  /** The newest epoch the node knows. */
  knownEpoch: number;
  /** The key prefixes the replica holds (empty: every key). */
  keyFilter: readonly string[];
  /** A full sync from the master is being received: the data is incomplete. */
  fullSyncInProgress: boolean;
  /** The epoch asked for (undefined: the newest known + 1). */
  epoch?: number;
}

/** The epoch a promotion takes; throws {@link RoleChangeError} when the node cannot be promoted. */
export function checkPromotion(facts: PromotionFacts): number {
  if (facts.changing) {
    throw new RoleChangeError("a role change (PROMOTE or REPLICAOF) is already running");
  }
  if (!facts.replica) {
    throw new RoleChangeError(`this node is already a master (epoch ${facts.ownEpoch})`);
  }
  if (facts.keyFilter.length > 0) {
    throw new RoleChangeError(
      `this replica is filtered: it holds only keys under [${facts.keyFilter.join(",")}], not ` +
        `every write, so it can never become a master; promote a replica without a key filter`,
    );
  }
  if (facts.fullSyncInProgress) {
    throw new RoleChangeError(
      "a full sync from the master is in progress: this replica's data is incomplete; " +
        "promote another replica, or wait for the sync to finish",
    );
  }
  const epoch = facts.epoch ?? facts.knownEpoch + 1;
  if (!Number.isInteger(epoch) || epoch > MAX_EPOCH) {
    throw new RoleChangeError(`cannot promote: epoch ${epoch} would be above ${MAX_EPOCH}`);
  }
  if (epoch <= facts.knownEpoch) {
    throw new RoleChangeError(
      `cannot promote to epoch ${epoch}: this node knows epoch ${facts.knownEpoch} already`,
    );
  }
  return epoch;
}

/**
 * Checks the epoch a node is told to follow (`REPLICAOF ... EPOCH`, a coordinator's): a whole
 * number in range, not older than `knownEpoch` (a master of an older epoch is deposed).
 */
export function checkFollowEpoch(epoch: number | undefined, knownEpoch: number): void {
  if (epoch === undefined) return;
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > MAX_EPOCH) {
    throw new RoleChangeError(`epoch ${epoch} is not a whole number from 0 to ${MAX_EPOCH}`);
  }
  if (epoch < knownEpoch) {
    throw new RoleChangeError(
      `epoch ${epoch} is older than epoch ${knownEpoch}, the newest this node knows: a master ` +
        `of epoch ${epoch} is deposed`,
    );
  }
}

/**
 * The replicas a promoted node starts with: the ones it forwarded to (cascading: they become the
 * new master's direct replicas), then the ones asked for, each `host:port` once, first one kept.
 */
export function promotionReplicas(
  forwarded: readonly HostPort[],
  requested: readonly HostPort[],
): HostPort[] {
  const seen = new Set<string>();
  const replicas: HostPort[] = [];
  for (const address of [...forwarded, ...requested]) {
    const text = formatHostPort(address);
    if (seen.has(text)) continue;
    seen.add(text);
    replicas.push(address);
  }
  return replicas;
}

/** The newer epoch a `STALEEPOCH` refusal carries (its first word), or undefined. */
export function newerEpochOf(message: string): number | undefined {
  const match = /^(\d{1,10}) /.exec(message);
  const epoch = match === null ? NaN : Number(match[1]);
  return Number.isInteger(epoch) && epoch >= 0 && epoch <= MAX_EPOCH ? epoch : undefined;
}

/** What a replica's refusal of this node's stream means for this node. */
export type RefusalOutcome =
  /** Nothing changes (not `STALEEPOCH`, or a forwarding replica that knows the epoch). */
  | { kind: "none" }
  /** A forwarding replica learns the newer epoch: it refuses older masters from now on. */
  | { kind: "learn"; epoch: number }
  /** A master is deposed: a newer master exists. */
  | { kind: "depose"; epoch: number; reason: string };

/**
 * A replica at `address` refused this node's stream with `code` and `message`: `STALEEPOCH` means
 * a newer master exists (of the epoch the message names, else one above `knownEpoch`). A master is
 * deposed; a forwarding replica (`replica`) learns the epoch when it is newer than it knows.
 */
export function refusalOutcome(
  refusal: { address: string; code: string; message: string },
  node: { replica: boolean; knownEpoch: number },
): RefusalOutcome {
  if (refusal.code !== "STALEEPOCH") return { kind: "none" };
  const epoch = newerEpochOf(refusal.message) ?? node.knownEpoch + 1;
  if (node.replica) return epoch > node.knownEpoch ? { kind: "learn", epoch } : { kind: "none" };
  return {
    kind: "depose",
    epoch,
    reason: `replica ${refusal.address} follows a newer master: ${refusal.message}`,
  };
}
