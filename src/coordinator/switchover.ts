/**
 * Planned switchover, run by the master's coordinator: new writes are refused (`-READONLY`, which
 * clients retry), the writes taken are made durable and waited for on the target, then one
 * transaction hands the leader key (bound to the target's lease) and a new epoch to the target,
 * on condition that this master still holds the key and nobody took an epoch meanwhile. The
 * master then follows the target (its coordinator sees the key change). On any failure nothing
 * changed, writes resume here, and the error says why.
 *
 * @module
 */
import { getLog } from "../log.ts";
import type { NodeRole } from "../replication/node_role.ts";
import type { KVStore } from "../storage/mod.ts";
import type { ClusterView } from "./cluster_view.ts";
import { eligible, type MemberRecord } from "./election.ts";
import type { EtcdClient } from "./etcd_client.ts";
import { type ClusterKeys, formatLeader } from "./records.ts";

const log = getLog("coordinator");

/** A switchover was refused or did not finish; the message says why (nothing changed). */
export class SwitchoverError extends Error {
  override name = "SwitchoverError";
}

/** What a switchover works with: the master's coordinator's parts. */
export interface SwitchoverContext {
  role: NodeRole;
  store: KVStore;
  view: ClusterView;
  client: EtcdClient;
  keys: ClusterKeys;
  selfName: string;
  lease: string;
  /** The leader key is this node's, under its current lease. */
  leaderIsSelf: boolean;
  /** Why writes are paused now, if they are (then no switchover starts). */
  paused: string | undefined;
  /** Pauses new writes with `reason`, or resumes them (undefined). */
  pause(reason: string | undefined): void;
  /** Re-reads the cluster (after a failed transaction). */
  refresh(): Promise<void>;
  sleep(ms: number): Promise<void>;
}

/** The member `target` can take over, or a {@link SwitchoverError} saying why not. */
function targetMember(context: SwitchoverContext, target: string): MemberRecord {
  const { role, view } = context;
  if (role.replica || !context.leaderIsSelf) {
    throw new SwitchoverError(
      `this node is not the master; run it on the master (${view.leader?.name ?? "none now"})`,
    );
  }
  if (target === context.selfName) throw new SwitchoverError(`${target} is the master already`);
  const member = view.members.get(target)?.record;
  if (member === undefined) {
    throw new SwitchoverError(
      `no registered member is named ${target} (members: ${[...view.members.keys()].join(", ")})`,
    );
  }
  if (!eligible(member)) {
    throw new SwitchoverError(
      `${target} cannot lead: ` +
        (member.filtered
          ? "it is a selective replica (key filter)"
          : "its log is incomplete (a full sync has not finished)"),
    );
  }
  if (context.paused !== undefined) {
    throw new SwitchoverError(`writes are paused: ${context.paused}`);
  }
  return member;
}

/** Hands the master role to member `target`; see the module comment. */
export async function switchover(
  context: SwitchoverContext,
  target: string,
  timeoutMs: number,
): Promise<{ epoch: number; lsn: number }> {
  const member = targetMember(context, target);
  const { store, view, keys } = context;
  context.pause(`a switchover to ${target} is in progress; retry in a moment`);
  const startedMs = performance.now();
  try {
    await store.whenDurable(store.lastLsn);
    const lsn = store.lastLsn;
    log.warn("SWITCHOVER to {target}: writes paused; waiting for it to have LSN {lsn}", {
      event: "switchover_started",
      target,
      lsn,
    });
    await waitForAck(context, member.address, lsn, startedMs + timeoutMs, target);
    const epoch = view.nextEpoch(context.role.epoch);
    const { succeeded, revision } = await context.client.txn(
      [
        { key: keys.leader, target: "LEASE", lease: context.lease },
        { key: keys.epoch, target: "MOD", modRevision: view.epochModRevision },
      ],
      [
        {
          put: {
            key: keys.leader,
            value: formatLeader({ name: target, address: member.address, epoch }),
            lease: member.lease,
          },
        },
        { put: { key: keys.epoch, value: String(epoch) } },
      ],
    );
    if (!succeeded) {
      await context.refresh();
      throw new SwitchoverError("the leader key or the epoch changed meanwhile; nothing done");
    }
    view.noteEpoch(epoch, revision);
    view.setLeader(
      { name: target, address: member.address, epoch, lease: member.lease },
      revision,
      performance.now(),
    );
    log.warn("SWITCHOVER: the leader key is {target}'s (epoch {epoch}) after {ms} ms", {
      event: "switchover_done",
      target,
      epoch,
      ms: Math.round(performance.now() - startedMs),
    });
    return { epoch, lsn };
  } finally {
    // From here the leader key is the target's: the acknowledgement fence holds writes back.
    context.pause(undefined);
  }
}

/** Waits until the replica at `address` acknowledged `lsn`, or the deadline passes. */
async function waitForAck(
  context: SwitchoverContext,
  address: string,
  lsn: number,
  deadlineMs: number,
  name: string,
): Promise<void> {
  for (;;) {
    const replica = context.role.replicator?.replicaManager.getStatus().replicas.find((r) =>
      r.address === address
    );
    const acked = replica?.ackedLsn ?? 0;
    if (acked >= lsn) return;
    // A target whose link failed cannot catch up: give up now rather than pause writes until the
    // timeout.
    if (replica !== undefined && replica.state === "down" && replica.consecutiveFailures > 0) {
      throw new SwitchoverError(
        `${name} has LSN ${acked} of ${lsn} and its replication link is down ` +
          `(${replica.lastError || "no answer"}); nothing done, writes resume here`,
      );
    }
    if (performance.now() >= deadlineMs) {
      throw new SwitchoverError(
        `${name} has LSN ${acked} of ${lsn} after the timeout; nothing done, writes resume here`,
      );
    }
    await context.sleep(5);
  }
}
