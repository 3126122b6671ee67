/**
 * What a node must remember about its role across restarts, beside its log in
 * `data-dir/NODE_STATE.json` (replaced atomically, see `storage/durable_file.ts`):
 *
 * - `highestEpochSeen`: the newest epoch a master announced to this replica. The log holds an
 *   epoch only once a record of it arrives; without this, a replica that accepted a new master's
 *   HELLO and restarted before any of its records would accept the deposed master again.
 * - `promotedEpoch` / `promotedAt`: set by `PROMOTE`, which changes the running node only, while
 *   its settings still say `--replica`. A node restarted like that would silently turn the
 *   cluster's master back into a read-only replica, so it refuses to start until its settings
 *   agree (no `--replica`) or the operator demotes it on purpose (`--replica --demote`). Starting
 *   it as a master clears the mark: its settings then say what PROMOTE did.
 *
 * @module
 */
import { writeFileDurably } from "../storage/durable_file.ts";

/** The file name, in the data directory. */
export const NODE_STATE_FILE = "NODE_STATE.json";

/** The role facts a node keeps across restarts. */
export interface NodeState {
  highestEpochSeen: number;
  promotedEpoch?: number;
  promotedAt?: string;
}

/** The node state is unreadable or says something impossible. */
export class NodeStateError extends Error {
  override name = "NodeStateError";
}

function isEpoch(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 &&
    value <= 0xffff_ffff;
}

/** Reads the state of the node in `dir`; a node that never wrote one has epoch 0, no promotion. */
export async function readNodeState(dir: string): Promise<NodeState> {
  const path = `${dir}/${NODE_STATE_FILE}`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { highestEpochSeen: 0 };
    throw new NodeStateError(`cannot read ${path}: ${String(error)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new NodeStateError(`${path} is not JSON (${String(error)}); restore it or remove it`);
  }
  const state = parsed as Partial<NodeState> | null;
  if (
    state === null || typeof state !== "object" || !isEpoch(state.highestEpochSeen) ||
    (state.promotedEpoch !== undefined && !isEpoch(state.promotedEpoch))
  ) {
    throw new NodeStateError(`${path} does not hold a node state: ${text.slice(0, 200)}`);
  }
  return {
    highestEpochSeen: state.highestEpochSeen,
    ...(state.promotedEpoch === undefined
      ? {}
      : { promotedEpoch: state.promotedEpoch, promotedAt: String(state.promotedAt ?? "") }),
  };
}

/** Replaces the state of the node in `dir`, atomically and durably. */
export async function writeNodeState(dir: string, state: NodeState): Promise<void> {
  await writeFileDurably(
    dir,
    NODE_STATE_FILE,
    new TextEncoder().encode(JSON.stringify(state, null, 2) + "\n"),
  );
}
