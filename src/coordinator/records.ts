/**
 * Where a cluster lives in etcd, and the records kept there, read defensively (a value someone
 * wrote by hand must not crash a node: it is skipped and logged by the caller).
 *
 * ```
 * /kvstore/<cluster>/leader           {"name","address","epoch"}   bound to the leader's lease
 * /kvstore/<cluster>/epoch            "<n>": the last epoch handed out (never decreases)
 * /kvstore/<cluster>/members/<name>   a MemberRecord                bound to the member's lease
 * /kvstore/<cluster>/nodes/<name>     "<address>": the node exists (no lease; the cluster's size)
 * ```
 *
 * @module
 */
import type { LeaderRecord, MemberRecord } from "./election.ts";
import type { EtcdKeyValue } from "./etcd_client.ts";

/** The keys of one cluster. */
export interface ClusterKeys {
  prefix: string;
  leader: string;
  epoch: string;
  members: string;
  nodes: string;
}

/** The keys of cluster `name`. */
export function clusterKeys(name: string): ClusterKeys {
  const prefix = `/kvstore/${name}/`;
  return {
    prefix,
    leader: `${prefix}leader`,
    epoch: `${prefix}epoch`,
    members: `${prefix}members/`,
    nodes: `${prefix}nodes/`,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function wholeNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** The leader key's record, or undefined when its value is not one. */
export function parseLeader(kv: EtcdKeyValue): LeaderRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(kv.value);
  } catch {
    return undefined;
  }
  if (!isRecord(value)) return undefined;
  const { name, address, epoch } = value;
  if (typeof name !== "string" || typeof address !== "string" || !wholeNumber(epoch)) {
    return undefined;
  }
  return { name, address, epoch, lease: kv.lease };
}

/** The leader key's value for `record` (its lease is the key's, not in the value). */
export function formatLeader(record: Omit<LeaderRecord, "lease">): string {
  return JSON.stringify({ name: record.name, address: record.address, epoch: record.epoch });
}

/** A member record, or undefined when the value is not one. */
export function parseMember(kv: EtcdKeyValue): MemberRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(kv.value);
  } catch {
    return undefined;
  }
  if (!isRecord(value)) return undefined;
  const v = value;
  if (
    typeof v.name !== "string" || typeof v.address !== "string" ||
    (v.role !== "master" && v.role !== "replica") || !wholeNumber(v.lsn) ||
    !wholeNumber(v.lastEpoch) || !wholeNumber(v.epoch) || typeof v.fullSync !== "boolean" ||
    typeof v.diverged !== "boolean" || typeof v.filtered !== "boolean" ||
    typeof v.healthy !== "boolean" ||
    !wholeNumber(v.reportedAtMs)
  ) {
    return undefined;
  }
  return {
    name: v.name,
    address: v.address,
    role: v.role,
    lsn: v.lsn,
    lastEpoch: v.lastEpoch,
    epoch: v.epoch,
    fullSync: v.fullSync,
    diverged: v.diverged,
    filtered: v.filtered,
    healthy: v.healthy,
    lease: kv.lease,
    reportedAtMs: v.reportedAtMs,
  };
}

/** The value of a member record (its lease is the key's). */
export function formatMember(record: MemberRecord): string {
  const { lease: _, ...rest } = record;
  return JSON.stringify(rest);
}
