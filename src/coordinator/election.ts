/**
 * The coordinator's decisions, without sockets or timers: what a node does given what etcd says
 * (the leader key, the member records) and what the node is (role, log position, epochs). The
 * driver (`coordinator.ts`) reads etcd, calls {@link decide}, and carries out the answer through
 * the node's `NodeRole`; the tests drive this core directly.
 *
 * The rules:
 * - **Who may stand.** Only a replica whose log is complete (no full sync in progress, no diverged
 *   log waiting to be replaced, no key filter) and at least as up to date as every other eligible member:
 *   compared as Raft does, by the epoch of its last record, then its LSN. Within one epoch there
 *   was one master, so logs of the same last epoch are prefixes of each other's; a log whose last
 *   record is of a newer epoch holds everything that master acknowledged.
 * - **Settle.** After the leader key vanished (at revision R), a candidate waits until every
 *   registered member re-reported (its record written after R), or `settleMs` passed; it does
 *   not wait for the vanished leader itself (its lease ended with the key). Of several
 *   equally up-to-date members the one with the smallest name stands first; after twice
 *   `settleMs` any of them may (the leader key's transaction lets exactly one win).
 * - **Sync mode.** With `SYNC_REPLICAS = k`, every acknowledged write is on k of the R replicas
 *   the cluster had, so at least R − k + 1 eligible members must have re-reported: one of them
 *   holds each acknowledged write, and the winner is at least as up to date as all of them.
 * - **Following.** Everyone else follows the leader key: a replica re-points to its address in its
 *   epoch, a master that is not the leader steps down (follows it, or nobody while there is no
 *   leader). A leader key with this node's name but another lease is a previous run's: it is
 *   revoked so the election can run at once.
 *
 * @module
 */

/** What a member writes into its record (`/kvstore/<cluster>/members/<name>`). */
export interface MemberRecord {
  name: string;
  /** Where clients and the master reach it (`host:port`). */
  address: string;
  role: "master" | "replica";
  /** Its log's last LSN, and the epoch of that record. */
  lsn: number;
  lastEpoch: number;
  /** The newest epoch it knows. */
  epoch: number;
  fullSync: boolean;
  diverged: boolean;
  /** A selective replica (a key filter): it holds only some keys and can never lead. */
  filtered: boolean;
  /** False while a replica's link to its master is down, or a master's writes are fenced. */
  healthy: boolean;
  /** The lease the record is bound to (etcd's ID, decimal). */
  lease: string;
  /** Wall-clock time of the report (ms since 1970), for people. */
  reportedAtMs: number;
}

/** The leader key's value (`/kvstore/<cluster>/leader`), bound to the leader's lease. */
export interface LeaderRecord {
  name: string;
  address: string;
  epoch: number;
  /** The lease the key is bound to. */
  lease: string;
}

/** A member record as read, with the revision it was written at. */
export interface MemberView {
  record: MemberRecord;
  modRevision: number;
}

/** What this node is, as the driver reads it from its `NodeRole` and store. */
export interface SelfFacts {
  name: string;
  address: string;
  /** This node's current lease ("" when it has none). */
  lease: string;
  role: "master" | "replica";
  lsn: number;
  lastEpoch: number;
  epoch: number;
  fullSync: boolean;
  diverged: boolean;
  filtered: boolean;
  /** A role change runs: decide nothing until it ends. */
  changing: boolean;
  /** The master a replica follows (`host:port`, "" when none is named). */
  following: string;
}

/** When the leader key was found absent: etcd's revision then, this node's clock, whose it was. */
export interface LeaderGone {
  revision: number;
  atMs: number;
  /**
   * The name the vanished leader key held, when this node saw it. Its lease ended with the key, so
   * the settle does not wait for it to report (a dead master never does); if it is back, its new
   * record takes part like anyone's. Sync mode's quorum counts replicas only, so nothing an
   * acknowledged write needs is lost by not waiting for it.
   */
  formerLeader?: string;
}

/** Everything {@link decide} looks at. */
export interface ElectionInput {
  self: SelfFacts;
  /** The leader key, undefined when it is absent. */
  leader: LeaderRecord | undefined;
  /** When the leader key was found absent; undefined while it is present. */
  leaderGone: LeaderGone | undefined;
  /** Every member record read, this node's included. */
  members: readonly MemberView[];
  /** Names of the nodes ever registered in the cluster (persistent keys). */
  nodes: readonly string[];
  /** SYNC_REPLICAS when the cluster runs in sync mode, else undefined. */
  syncReplicas: number | undefined;
  settleMs: number;
  nowMs: number;
}

/** What the node does next. */
export type Decision =
  /** Nothing to do now; `reason` says why it does not stand (for the log and INFO). */
  | { kind: "wait"; reason: string }
  /** Nothing to do: the node is where the leader key says it should be. */
  | { kind: "steady" }
  /** Try to take the leader key. */
  | { kind: "campaign" }
  /** The leader key is this node's: become the master of `epoch`. */
  | { kind: "promote"; epoch: number }
  /** Follow (a replica re-points; a master steps down to) the leader at `address`. */
  | { kind: "follow"; address: string; epoch: number }
  /** A master without a leader key: stop being one (follow nobody until someone wins). */
  | { kind: "step_down" }
  /** The leader key names this node under a lease of a previous run: revoke that lease. */
  | { kind: "revoke"; lease: string };

/** Orders logs as Raft does: the epoch of the last record, then the LSN. */
export function compareLogs(
  a: { lastEpoch: number; lsn: number },
  b: { lastEpoch: number; lsn: number },
): number {
  return a.lastEpoch !== b.lastEpoch ? a.lastEpoch - b.lastEpoch : a.lsn - b.lsn;
}

/** Whether a member's log is complete enough to stand. */
export function eligible(
  member: { fullSync: boolean; diverged: boolean; filtered: boolean },
): boolean {
  return !member.fullSync && !member.diverged && !member.filtered;
}

/** The decision for `input`; see the module comment. */
export function decide(input: ElectionInput): Decision {
  const { self, leader } = input;
  if (self.changing) return { kind: "wait", reason: "a role change is running" };
  if (leader !== undefined) return followLeader(self, leader);
  if (self.role === "master") return { kind: "step_down" };
  return standOrWait(input);
}

function followLeader(self: SelfFacts, leader: LeaderRecord): Decision {
  if (leader.name === self.name) {
    if (leader.lease !== self.lease) return { kind: "revoke", lease: leader.lease };
    return self.role === "master" ? { kind: "steady" } : { kind: "promote", epoch: leader.epoch };
  }
  if (self.role === "master" || self.following !== leader.address || self.epoch < leader.epoch) {
    return { kind: "follow", address: leader.address, epoch: leader.epoch };
  }
  return { kind: "steady" };
}

function standOrWait(input: ElectionInput): Decision {
  const { self, leaderGone, nowMs, settleMs } = input;
  if (self.lease === "") return { kind: "wait", reason: "not registered in etcd yet" };
  if (self.fullSync) return { kind: "wait", reason: "a full sync is in progress here" };
  if (self.diverged) return { kind: "wait", reason: "this node's log diverged (full sync due)" };
  if (self.filtered) {
    return { kind: "wait", reason: "a selective replica (key filter) never leads" };
  }
  const waitedMs = leaderGone === undefined ? 0 : nowMs - leaderGone.atMs;
  const others = input.members.filter((m) => m.record.name !== self.name);
  const fresh = (m: MemberView) => leaderGone !== undefined && m.modRevision > leaderGone.revision;
  // Nodes the cluster had that did not register (yet): a restart of the whole cluster must not
  // let the first one up win with less data than the others.
  const registered = new Set(input.members.map((m) => m.record.name));
  const formerLeader = leaderGone?.formerLeader;
  const missing = [
    ...others.filter((m) => !fresh(m)).map((m) => m.record.name),
    ...input.nodes.filter((name) => name !== self.name && !registered.has(name)),
  ].filter((name) => name !== formerLeader);
  if (missing.length > 0 && waitedMs < settleMs) {
    return { kind: "wait", reason: `waiting for ${missing.join(", ")} to report` };
  }
  const rivals = others.filter((m) => eligible(m.record));
  const ahead = rivals.find((m) => compareLogs(m.record, self) > 0);
  if (ahead !== undefined) {
    return {
      kind: "wait",
      reason: `${ahead.record.name} is more up to date (epoch ${ahead.record.lastEpoch} LSN ` +
        `${ahead.record.lsn}; here epoch ${self.lastEpoch} LSN ${self.lsn})`,
    };
  }
  const tiedFirst = rivals.find((m) =>
    compareLogs(m.record, self) === 0 && m.record.name < self.name
  );
  if (tiedFirst !== undefined && waitedMs < 2 * settleMs) {
    return { kind: "wait", reason: `${tiedFirst.record.name} is as up to date and stands first` };
  }
  const quorum = syncQuorum(input);
  if (quorum !== undefined) {
    const reported = 1 + rivals.filter(fresh).length;
    if (reported < quorum) {
      return {
        kind: "wait",
        reason: `sync mode: ${reported} of the ${quorum} members needed to prove no ` +
          `acknowledged write is missing have reported`,
      };
    }
  }
  return { kind: "campaign" };
}

/**
 * In sync mode, how many eligible members (this one included) must have re-reported since the
 * leader vanished: R − k + 1 of the R replicas the cluster had (the old master is one of its
 * nodes and cannot report). Undefined in async mode.
 */
export function syncQuorum(input: ElectionInput): number | undefined {
  if (input.syncReplicas === undefined) return undefined;
  const nodes = Math.max(input.nodes.length, input.members.length);
  const replicas = Math.max(1, nodes - 1);
  const k = Math.max(1, Math.min(input.syncReplicas, replicas));
  return replicas - k + 1;
}

/** What the fences of a master are computed from. */
export interface FenceFacts {
  /** The leader key names this node with its current lease. */
  leaderIsSelf: boolean;
  /**
   * Until when the lease can be trusted on this node's monotonic clock: the send time of the last
   * successful renewal plus the TTL etcd answered, minus the margin for clock drift.
   */
  trustedUntilMs: number;
  /** The send time of the last successful renewal (0: never). */
  lastRenewalMs: number;
  nowMs: number;
  /**
   * The same deadline on the wall clock, and its now: the monotonic clock stops while a machine
   * or VM is suspended, the lease at etcd does not. Past either deadline the lease is not trusted
   * (a wall clock stepped forward costs a needless pause, never a wrong acknowledgement).
   */
  trustedUntilWallMs?: number;
  wallNowMs?: number;
  /** Why new writes are paused although the lease holds (a switchover, a shutdown), if so. */
  paused?: string;
  /**
   * New writes stop this long before acknowledgements do, so a write taken just before the
   * lease's end is not left with an unknown outcome (-DEPOSED) but refused cleanly (-READONLY).
   */
  writeHeadroomMs?: number;
}

/**
 * Why a master may acknowledge no write now, or undefined: it does not hold the leader key, or
 * its lease may have expired at etcd.
 */
export function ackFence(facts: FenceFacts): string | undefined {
  if (!facts.leaderIsSelf) {
    return "this node does not hold the leader key in etcd (an election is running or another " +
      "node leads); retry on the master";
  }
  const wallExpired = facts.wallNowMs !== undefined && facts.trustedUntilWallMs !== undefined &&
    facts.wallNowMs >= facts.trustedUntilWallMs;
  if (facts.nowMs >= facts.trustedUntilMs || wallExpired) {
    const ago = facts.lastRenewalMs === 0
      ? "never renewed"
      : `last renewed ${((facts.nowMs - facts.lastRenewalMs) / 1000).toFixed(1)} s ago`;
    return `the leader lease in etcd cannot be trusted (${ago}: etcd unreachable or slow), so ` +
      `another node may be elected; writes resume by themselves once etcd renews it`;
  }
  return undefined;
}

/**
 * Why a master takes no new write now, or undefined: {@link ackFence}'s reasons, and a pause
 * (a switchover handing the leader key over, a shutdown: the writes already taken are still
 * acknowledged).
 */
export function writeFence(facts: FenceFacts): string | undefined {
  const headroomMs = facts.writeHeadroomMs ?? 0;
  return facts.paused ?? ackFence({
    ...facts,
    nowMs: facts.nowMs + headroomMs,
    wallNowMs: facts.wallNowMs === undefined ? undefined : facts.wallNowMs + headroomMs,
  });
}
