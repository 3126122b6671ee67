/**
 * A node's role at start: `NODE_STATE.json` reconciled with the role its settings ask for. What a
 * `PROMOTE` or `REPLICAOF` did before a restart is kept until the settings say the same (or the
 * node is demoted on purpose); a coordinator's node always starts as a replica.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { getLog } from "../log.ts";
import type { ServerNode } from "../server/hooks.ts";
import { type NodeState, NodeStateError, readNodeState, writeNodeState } from "./node_state.ts";

const log = getLog("replication");

/** True when a coordinator (etcd) gives the node its role. */
export function coordinated(config: Config): boolean {
  return config.COORDINATOR !== "none";
}

/**
 * Reads the node state and reconciles it with the role the settings ask for. A node that
 * `PROMOTE` made a master refuses to start as a replica unless demoted on purpose (`--demote`),
 * and one that `REPLICAOF` made a replica refuses to start as a master (it would be a second
 * one); starting it in the role it took clears the mark (its settings now say what the command
 * did).
 */
export async function reconcileRole(node: ServerNode): Promise<NodeState> {
  const dir = node.store.dir;
  const state = await readNodeState(dir);
  // With a coordinator the settings name no role: the node starts as a replica, and the
  // election (not a person) decides whether its promotion stands.
  const replica = node.config.REPLICA || coordinated(node.config);
  if (state.demotedAt !== undefined) {
    if (!replica) {
      throw new NodeStateError(
        `${dir} belongs to a replica: REPLICAOF made this node a replica` +
          (state.replicaOf === undefined ? "" : ` of ${state.replicaOf}`) +
          ` (at ${state.demotedAt}), but it was started as a master, which could make two ` +
          `masters. Start it with --replica (make the demotion permanent in its settings); to ` +
          `make it a master again, PROMOTE it once it runs as a replica`,
      );
    }
    const { demotedAt: _, ...cleared } = state;
    writeNodeState(dir, cleared);
    return cleared;
  }
  if (state.promotedEpoch === undefined) return state;
  const { promotedEpoch: _, promotedAt: __, ...cleared } = state;
  if (!replica) {
    const store = node.store;
    if (Math.max(store.epoch, store.replicationLog.lastEpoch) < state.promotedEpoch) {
      // The promotion's marker record did not survive (fsync no/everysec and a power loss):
      // write it again, so this master's records carry the epoch it was promoted to.
      await store.whenDurable(store.replicationLog.promote(state.promotedEpoch));
    }
    writeNodeState(dir, cleared);
    log.info("PROMOTE of epoch {epoch} is now this master's configured role", {
      event: "promotion_confirmed",
      epoch: state.promotedEpoch,
    });
    return cleared;
  }
  if (!node.config.DEMOTE && !coordinated(node.config)) {
    throw new NodeStateError(
      `${dir} belongs to a master: PROMOTE made this node the master of epoch ` +
        `${state.promotedEpoch} (at ${state.promotedAt}), but it was started with --replica, ` +
        `which would leave the cluster without a master. Start it without --replica (make ` +
        `the promotion permanent in its settings), or, to rejoin it as a replica on purpose, ` +
        `start it once with --replica --demote`,
    );
  }
  writeNodeState(dir, cleared);
  log.warn(
    "DEMOTED: this node, master of epoch {epoch} since {promotedAt}, starts as a replica " +
      "(--demote); writes it took since then are replaced by its master's data",
    { event: "demoted", epoch: state.promotedEpoch, promotedAt: state.promotedAt },
  );
  return cleared;
}
