/**
 * What a node knows of its cluster in etcd: the leader key, when it was found gone, the member
 * records, the nodes ever registered, the epoch key, and the newest revision all of it includes.
 * Fed by full reads (`applyRead`) and by the watch (`applyEvents`), in whatever order they arrive:
 * a read older than what the watch delivered is dropped, and watch events a read covered are
 * skipped, so the view only moves forward. No I/O.
 *
 * @module
 */
import type { LeaderGone, LeaderRecord, MemberView } from "./election.ts";
import type { EtcdKeyValue, WatchEvent } from "./etcd_client.ts";
import { type ClusterKeys, parseLeader, parseMember } from "./records.ts";

/** See the module comment. */
export class ClusterView {
  readonly #keys: ClusterKeys;
  /** Called once when the leader key is found gone (with the leader that was known, if any). */
  readonly #onLeaderGone: (previous: LeaderRecord | undefined, revision: number) => void;
  #leader: LeaderRecord | undefined;
  #leaderGone: LeaderGone | undefined;
  readonly members = new Map<string, MemberView>();
  readonly nodes = new Set<string>();
  /** The epoch key's value and revision (0 when absent). */
  epochValue = 0;
  epochModRevision = 0;
  /** The newest etcd revision the view includes (0: never read). */
  revision = 0;
  /** The revision of the last full read: watch events up to it are in the view already. */
  #readRevision = 0;

  constructor(
    keys: ClusterKeys,
    onLeaderGone: (previous: LeaderRecord | undefined, revision: number) => void,
  ) {
    this.#keys = keys;
    this.#onLeaderGone = onLeaderGone;
  }

  /** The leader key (undefined: absent). */
  get leader(): LeaderRecord | undefined {
    return this.#leader;
  }

  /** When the leader key was found absent: etcd's revision then, and the caller's clock. */
  get leaderGone(): LeaderGone | undefined {
    return this.#leaderGone;
  }

  /** A full read of the cluster's keys at `revision`. */
  applyRead(kvs: readonly EtcdKeyValue[], revision: number, nowMs: number): void {
    // The watch delivered newer changes while this read ran: the view is newer than the read.
    if (revision < this.revision) return;
    let leader: LeaderRecord | undefined;
    this.members.clear();
    this.nodes.clear();
    this.epochValue = 0;
    this.epochModRevision = 0;
    for (const kv of kvs) {
      if (kv.key === this.#keys.leader) leader = parseLeader(kv);
      else this.#applyPut(kv);
    }
    this.setLeader(leader, revision, nowMs);
    this.revision = Math.max(this.revision, revision);
    this.#readRevision = revision;
  }

  /** Changes the watch delivered. */
  applyEvents(events: readonly WatchEvent[], nowMs: number): void {
    const keys = this.#keys;
    for (const { type, kv } of events) {
      // A watch running behind a full read must not put older states back.
      if (kv.modRevision <= this.#readRevision) continue;
      this.revision = Math.max(this.revision, kv.modRevision);
      if (kv.key === keys.leader) {
        this.setLeader(type === "PUT" ? parseLeader(kv) : undefined, kv.modRevision, nowMs);
      } else if (type === "PUT") {
        this.#applyPut(kv);
      } else if (kv.key === keys.epoch) {
        this.epochValue = 0;
        this.epochModRevision = 0;
      } else if (kv.key.startsWith(keys.members)) {
        this.members.delete(kv.key.slice(keys.members.length));
      }
    }
  }

  /** The leader key as this node now knows it (read, watched, or written by this node). */
  setLeader(leader: LeaderRecord | undefined, revision: number, nowMs: number): void {
    if (leader === undefined) {
      if (this.#leaderGone === undefined) {
        this.#leaderGone = this.#leader === undefined
          ? { revision, atMs: nowMs }
          : { revision, atMs: nowMs, formerLeader: this.#leader.name };
        this.#onLeaderGone(this.#leader, revision);
      }
    } else {
      this.#leaderGone = undefined;
    }
    this.#leader = leader;
  }

  /** This node wrote the epoch key (`epoch`, at `revision`). */
  noteEpoch(epoch: number, revision: number): void {
    this.epochValue = epoch;
    this.epochModRevision = revision;
  }

  /** The epoch a new master takes: above the epoch key, every member's and `ownEpoch`. */
  nextEpoch(ownEpoch: number): number {
    let epoch = Math.max(this.epochValue, ownEpoch);
    for (const { record } of this.members.values()) epoch = Math.max(epoch, record.epoch);
    return epoch + 1;
  }

  #applyPut(kv: EtcdKeyValue): void {
    const keys = this.#keys;
    if (kv.key === keys.epoch) {
      this.epochValue = Number(kv.value) || 0;
      this.epochModRevision = kv.modRevision;
    } else if (kv.key.startsWith(keys.members)) {
      const name = kv.key.slice(keys.members.length);
      const record = parseMember(kv);
      if (record === undefined) this.members.delete(name);
      else this.members.set(name, { record, modRevision: kv.modRevision });
    } else if (kv.key.startsWith(keys.nodes)) {
      this.nodes.add(kv.key.slice(keys.nodes.length));
    }
  }
}
