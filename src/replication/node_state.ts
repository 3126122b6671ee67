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
 * - `demotedAt` / `replicaOf`: set by `REPLICAOF` on a node whose settings make it a master. A
 *   node restarted like that would be a second master beside the one it was told to follow, so
 *   it refuses to start until its settings agree (`--replica`, which clears the mark).
 *   `replicaOf` (the master `REPLICAOF` named, `host:port`) is kept on a replica too, for `INFO`
 *   and `ROLE` until the master's first HELLO.
 * - `keyFilter`: the key prefixes of the data a filtered replica holds (selective replication),
 *   kept once the full sync of a new filter committed; its master's `REPLICATE FILTER` is
 *   compared with it, and a filtered node refuses `PROMOTE` (it does not hold every key).
 * - `localWrites`: writes made on this replica by hand (the spec's `REPLICATE PUT|BATCHPUT|DELETE`,
 *   accepted only before it ever followed a master), counted before each is acknowledged. While
 *   there are any, the replica's HELLO reply says so and its master replaces its contents with a
 *   full sync; the count goes back to 0 when that full sync commits.
 *
 * A master's `highestEpochSeen` above its own epoch means it was deposed (a newer master exists):
 * it starts refusing writes.
 *
 * @module
 */
import { writeFileDurablySync } from "../storage/durable_file.ts";
import { MAX_EPOCH } from "../storage/mod.ts";

/** The file name, in the data directory. */
export const NODE_STATE_FILE = "NODE_STATE.json";

/** The role facts a node keeps across restarts. */
export interface NodeState {
  highestEpochSeen: number;
  promotedEpoch?: number;
  promotedAt?: string;
  demotedAt?: string;
  replicaOf?: string;
  localWrites?: number;
  /**
   * The key prefixes of the data a filtered replica holds (selective replication), set when the
   * full sync of a new filter commits; absent: every key. A filtered replica refuses PROMOTE.
   */
  keyFilter?: string[];
}

/** The node state is unreadable or says something impossible. */
export class NodeStateError extends Error {
  override name = "NodeStateError";
}

/** True for a whole number from 0 to {@link MAX_EPOCH}, the one bound of an epoch. */
export function isEpoch(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_EPOCH;
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
  if (state === null || typeof state !== "object" || !isNodeState(state)) {
    throw new NodeStateError(`${path} does not hold a node state: ${text.slice(0, 200)}`);
  }
  return {
    highestEpochSeen: state.highestEpochSeen,
    ...(state.promotedEpoch === undefined
      ? {}
      : { promotedEpoch: state.promotedEpoch, promotedAt: String(state.promotedAt ?? "") }),
    ...(state.demotedAt === undefined ? {} : { demotedAt: String(state.demotedAt) }),
    ...(state.replicaOf === undefined ? {} : { replicaOf: String(state.replicaOf) }),
    ...(state.localWrites ? { localWrites: state.localWrites } : {}),
    ...(state.keyFilter?.length ? { keyFilter: state.keyFilter.map(String) } : {}),
  };
}

function isNodeState(state: Partial<NodeState>): state is NodeState {
  return isEpoch(state.highestEpochSeen) &&
    (state.promotedEpoch === undefined || isEpoch(state.promotedEpoch)) &&
    (state.replicaOf === undefined || typeof state.replicaOf === "string") &&
    (state.localWrites === undefined ||
      (Number.isSafeInteger(state.localWrites) && state.localWrites >= 0)) &&
    (state.keyFilter === undefined ||
      (Array.isArray(state.keyFilter) && state.keyFilter.every((p) => typeof p === "string")));
}

/**
 * Replaces the state of the node in `dir`, atomically and durably (a temporary file, synced,
 * renamed over the old one, the directory synced). A state with an impossible value is refused
 * before anything is written (so a bad epoch can never make a node unable to restart).
 *
 * Synchronous, on purpose: it runs only on rare events (a newer epoch, a promotion, a local
 * write), and being synchronous a write it guards can be applied in the same turn right after it
 * (a pipelined read then sees it) while the state is already on disk; no two writes interleave.
 */
export function writeNodeState(dir: string, state: NodeState): void {
  if (!isNodeState(state)) {
    throw new NodeStateError(`refused to write an impossible node state: ${JSON.stringify(state)}`);
  }
  const bytes = new TextEncoder().encode(JSON.stringify(state, null, 2) + "\n");
  writeFileDurablySync(dir, NODE_STATE_FILE, bytes);
}

/**
 * `state` with the marks that say a node's running role differs from its settings' role: a
 * promoted replica (`promotedEpoch`, the epoch it was promoted to, `promotedAt`) or a demoted
 * master (`demotedAt`); none when they agree.
 *
 * @example
 * ```ts
 * import { markRole } from "./node_state.ts";
 * const at = { role: "replica", configured: "master", nowIso: "2026-01-01T00:00:00Z" } as const;
 * console.log(markRole({ highestEpochSeen: 3 }, at).demotedAt); // 2026-01-01T00:00:00Z
 * ```
 */
export function markRole(
  state: NodeState,
  at: { role: "master" | "replica"; configured: "master" | "replica"; nowIso: string },
): NodeState {
  const { promotedEpoch: _, promotedAt: __, demotedAt: ___, ...rest } = state;
  if (at.role === at.configured) return rest;
  if (at.role === "master") {
    return { ...rest, promotedEpoch: state.highestEpochSeen, promotedAt: at.nowIso };
  }
  return { ...rest, demotedAt: at.nowIso };
}

/**
 * The node state as a running node keeps it: read once at start, and each change written
 * durably (see {@link writeNodeState}) before it is kept. Fields set to undefined are left out.
 */
export class KeptNodeState {
  readonly #dir: string;
  #state: NodeState;

  constructor(dir: string, state: NodeState) {
    this.#dir = dir;
    this.#state = state;
  }

  /** What is kept now (read only: change it through this class). */
  get current(): Readonly<NodeState> {
    return this.#state;
  }

  /** The key prefixes the node holds (empty: every key). */
  get keyFilter(): readonly string[] {
    return this.#state.keyFilter ?? [];
  }

  /** Local writes made on this replica not yet replaced by a full sync. */
  get localWrites(): number {
    return this.#state.localWrites ?? 0;
  }

  /** Replaces the state, durably, and keeps it. */
  replace(state: NodeState): void {
    const cleaned = Object.fromEntries(
      Object.entries(state).filter(([, value]) => value !== undefined),
    ) as unknown as NodeState;
    writeNodeState(this.#dir, cleaned);
    this.#state = cleaned;
  }

  /**
   * Replaces the state with `changes` made and the marks of a node running as `at.role` while its
   * settings say `at.configured` (see {@link markRole}), durably, and keeps it.
   */
  changeRole(
    changes: Partial<NodeState>,
    at: { role: "master" | "replica"; configured: "master" | "replica" },
  ): void {
    const nowIso = new Date().toISOString();
    this.replace(markRole({ ...this.#state, ...changes }, { ...at, nowIso }));
  }

  /**
   * The fields of a node that follows `master` (`host:port`, "": none named; the field is then
   * removed) in `epoch` (undefined: none given): the newest epoch seen, and the master.
   */
  following(master: string, epoch: number | undefined): Partial<NodeState> {
    return {
      highestEpochSeen: Math.max(this.#state.highestEpochSeen, epoch ?? 0),
      replicaOf: master === "" ? undefined : master,
    };
  }

  /** Remembers `epoch` as the highest seen when it is newer than the one kept. */
  rememberEpoch(epoch: number): void {
    if (epoch > this.#state.highestEpochSeen) {
      this.replace({ ...this.#state, highestEpochSeen: epoch });
    }
  }

  /** Counts one more local write (before it is applied). */
  countLocalWrite(): void {
    this.replace({ ...this.#state, localWrites: this.localWrites + 1 });
  }

  /** The node now holds the keys under `prefixes` (none: every key). */
  holdKeyFilter(prefixes: readonly string[]): void {
    const { keyFilter: _, ...rest } = this.#state;
    this.replace(prefixes.length === 0 ? rest : { ...rest, keyFilter: [...prefixes] });
  }

  /** A full sync replaced the local writes: forgets them, and returns how many there were. */
  forgetLocalWrites(): number {
    const replaced = this.localWrites;
    if (replaced === 0) return 0;
    const { localWrites: _, ...rest } = this.#state;
    this.replace(rest);
    return replaced;
  }
}
