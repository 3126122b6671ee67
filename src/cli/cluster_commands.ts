/**
 * The commands of a cluster run by the etcd coordinator, read from etcd itself (as `patronictl`
 * reads its DCS), so they work while nodes are down:
 *
 * - `kvstore cluster status [--json]`: every member, its role, address, epoch, LSN, lag behind the
 *   leader, lease time left and health; nodes the cluster had that are not registered now are
 *   listed as down.
 * - `kvstore switchover --to NAME [--timeout-ms N]`: asks the master (found through the leader key)
 *   to hand over to NAME (`SWITCHOVER`): it stops taking writes, waits until NAME has every LSN,
 *   and gives it the leader key; clients see a short pause with a retryable `-READONLY`.
 *
 * Both take `--etcd-endpoints` and `--cluster-name` (or `KVSTORE_ETCD_ENDPOINTS`,
 * `KVSTORE_CLUSTER_NAME`, as `kvstore serve` does).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KVClient } from "../client/kv_client.ts";
import { KVError } from "../client/errors.ts";
import { parseHostPort, SETTINGS } from "../config.ts";
import type { LeaderRecord, MemberRecord } from "../coordinator/election.ts";
import { EtcdClient, EtcdError } from "../coordinator/etcd_client.ts";
import { clusterKeys, parseLeader, parseMember } from "../coordinator/records.ts";
import { credentialOptions } from "./client_commands.ts";

/** Bounds of the cluster commands. */
const LIMITS = {
  /** One etcd request on one endpoint. */
  etcdTimeoutMs: 2_000,
  /** Default wait of `switchover` for its target to catch up. */
  switchoverTimeoutMs: 10_000,
  /** The most `--timeout-ms` may ask (SWITCHOVER's own bound). */
  maxSwitchoverTimeoutMs: 600_000,
} as const;

/** One row of `cluster status`. */
export interface MemberStatus {
  name: string;
  role: "leader" | "master" | "replica" | "down";
  address: string;
  epoch: number;
  lsn: number;
  /** Records behind the leader's last report (undefined without a leader). */
  lagRecords: number | undefined;
  /** Seconds its lease has left at etcd (-1: none). */
  leaseLeftSeconds: number;
  health: string;
  reportedAtMs: number;
}

/** What `cluster status` shows. */
export interface ClusterStatus {
  cluster: string;
  leader: string;
  epoch: number;
  members: MemberStatus[];
}

function fail(message: string): number {
  console.error(`kvstore: ${message}`);
  return 1;
}

function etcdOf(values: { "etcd-endpoints"?: string }): EtcdClient {
  const text = values["etcd-endpoints"] ?? Deno.env.get("KVSTORE_ETCD_ENDPOINTS") ??
    String(SETTINGS.ETCD_ENDPOINTS.default);
  const endpoints = text.split(",").map((e) => e.trim()).filter((e) => e !== "");
  return new EtcdClient({ endpoints, timeoutMs: LIMITS.etcdTimeoutMs });
}

function clusterNameOf(values: { "cluster-name"?: string }): string {
  return values["cluster-name"] ?? Deno.env.get("KVSTORE_CLUSTER_NAME") ??
    String(SETTINGS.CLUSTER_NAME.default);
}

/** Reads a cluster's state from etcd. */
export async function readClusterStatus(etcd: EtcdClient, cluster: string): Promise<ClusterStatus> {
  const keys = clusterKeys(cluster);
  const { kvs } = await etcd.range(keys.prefix, { prefix: true });
  let leader: LeaderRecord | undefined;
  const members: MemberRecord[] = [];
  const nodes = new Map<string, string>();
  for (const kv of kvs) {
    if (kv.key === keys.leader) leader = parseLeader(kv);
    else if (kv.key.startsWith(keys.members)) {
      const record = parseMember(kv);
      if (record !== undefined) members.push(record);
    } else if (kv.key.startsWith(keys.nodes)) nodes.set(kv.key.slice(keys.nodes.length), kv.value);
  }
  const leaderLsn = members.find((m) => m.name === leader?.name)?.lsn;
  const rows: MemberStatus[] = await Promise.all(members.map(async (m) => {
    const flags = [m.healthy ? "healthy" : "unhealthy"];
    if (m.fullSync) flags.push("full sync");
    if (m.diverged) flags.push("diverged");
    if (m.filtered) flags.push("selective (never leads)");
    return {
      name: m.name,
      role: m.name === leader?.name ? "leader" as const : m.role,
      address: m.address,
      epoch: m.epoch,
      lsn: m.lsn,
      lagRecords: leaderLsn === undefined ? undefined : Math.max(0, leaderLsn - m.lsn),
      leaseLeftSeconds: await etcd.timeToLive(m.lease).catch(() => -1),
      health: flags.join(", "),
      reportedAtMs: m.reportedAtMs,
    };
  }));
  for (const [name, address] of nodes) {
    if (members.some((m) => m.name === name)) continue;
    rows.push({
      name,
      role: "down",
      address,
      epoch: 0,
      lsn: 0,
      lagRecords: undefined,
      leaseLeftSeconds: -1,
      health: "not registered (stopped, or cannot reach etcd)",
      reportedAtMs: 0,
    });
  }
  rows.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return { cluster, leader: leader?.name ?? "", epoch: leader?.epoch ?? 0, members: rows };
}

/** `cluster status` as a table. */
export function formatClusterStatus(status: ClusterStatus): string {
  const header = ["MEMBER", "ROLE", "ADDRESS", "EPOCH", "LSN", "LAG", "LEASE", "HEALTH"];
  const rows = status.members.map((m) => [
    m.name,
    m.role,
    m.address,
    m.role === "down" ? "" : String(m.epoch),
    m.role === "down" ? "" : String(m.lsn),
    m.lagRecords === undefined ? "" : String(m.lagRecords),
    m.leaseLeftSeconds < 0 ? "" : `${m.leaseLeftSeconds}s`,
    m.health,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const title = `cluster ${status.cluster}: ` +
    (status.leader === ""
      ? "NO LEADER (an election is running, or no member can lead)"
      : `leader ${status.leader}, epoch ${status.epoch}`);
  return [title, line(header), ...rows.map(line)].join("\n") + "\n";
}

/** `kvstore cluster status [--json]`. */
export async function clusterCommand(args: string[]): Promise<number> {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        "etcd-endpoints": { type: "string" },
        "cluster-name": { type: "string" },
        json: { type: "boolean" },
      },
    }));
  } catch (error) {
    return fail(`cluster: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (positionals.length !== 1 || positionals[0] !== "status") {
    return fail(
      "usage: kvstore cluster status [--json] [--etcd-endpoints URLS] [--cluster-name NAME]",
    );
  }
  let status: ClusterStatus;
  try {
    status = await readClusterStatus(etcdOf(values), clusterNameOf(values));
  } catch (error) {
    if (error instanceof EtcdError) return fail(`cluster status: ${error.message}`);
    throw error;
  }
  if (values.json) console.log(JSON.stringify(status));
  else Deno.stdout.writeSync(new TextEncoder().encode(formatClusterStatus(status)));
  return 0;
}

/**
 * The leader of `status` to ask for a switchover to member `target`, or why there is none: no
 * leader now, or no registered member of that name (a down member cannot take over).
 */
export function switchoverLeader(status: ClusterStatus, target: string): MemberStatus | string {
  const leader = status.members.find((m) => m.name === status.leader);
  if (leader === undefined) return `cluster ${status.cluster} has no leader now`;
  const up = status.members.filter((m) => m.role !== "down");
  if (!up.some((m) => m.name === target)) {
    return `no registered member of ${status.cluster} is named ${target} (members: ${
      up.map((m) => m.name).join(", ")
    })`;
  }
  return leader;
}

/** `switchover`'s `--timeout-ms` (default {@link LIMITS.switchoverTimeoutMs}), or why not. */
function switchoverTimeoutMs(text = String(LIMITS.switchoverTimeoutMs)): number | string {
  const timeoutMs = Number(text);
  if (Number.isInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= LIMITS.maxSwitchoverTimeoutMs) {
    return timeoutMs;
  }
  return `--timeout-ms "${text}" must be whole milliseconds from 1 to ` +
    `${LIMITS.maxSwitchoverTimeoutMs}`;
}

/** `kvstore switchover --to NAME [--timeout-ms N]`. */
export async function switchoverCommand(args: string[]): Promise<number> {
  let values;
  let credentials;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        to: { type: "string" },
        "timeout-ms": { type: "string" },
        "etcd-endpoints": { type: "string" },
        "cluster-name": { type: "string" },
        "auth-token": { type: "string" },
        "auth-token-file": { type: "string" },
        "replication-token": { type: "string" },
        "replication-token-file": { type: "string" },
        "tls-ca": { type: "string" },
        tls: { type: "boolean" },
      },
    }));
    credentials = await credentialOptions(values);
  } catch (error) {
    return fail(`switchover: ${error instanceof Error ? error.message : String(error)}`);
  }
  const target = values.to;
  if (target === undefined || target === "") return fail("usage: kvstore switchover --to NAME");
  const timeoutMs = switchoverTimeoutMs(values["timeout-ms"]);
  if (typeof timeoutMs === "string") return fail(`switchover: ${timeoutMs}`);
  let status: ClusterStatus;
  try {
    status = await readClusterStatus(etcdOf(values), clusterNameOf(values));
  } catch (error) {
    if (error instanceof EtcdError) return fail(`switchover: ${error.message}`);
    throw error;
  }
  const leader = switchoverLeader(status, target);
  if (typeof leader === "string") return fail(`switchover: ${leader}`);
  const address = parseHostPort(leader.address, "leader address");
  const client = new KVClient({
    host: address.host,
    port: address.port,
    timeoutMs: timeoutMs + LIMITS.etcdTimeoutMs,
    token: credentials.token,
    replicationToken: credentials.replicationToken,
    tls: credentials.tls,
  });
  try {
    const reply = await client.send(["SWITCHOVER", target, String(timeoutMs)]);
    console.log(`${leader.name} (${leader.address}): ${String(reply)}`);
    return 0;
  } catch (error) {
    if (error instanceof KVError) return fail(`switchover: ${leader.name}: ${error.message}`);
    throw error;
  } finally {
    await client.close();
  }
}
