/**
 * The pure parts of the cluster commands: `cluster status` as a table, and which leader a
 * `switchover` asks (or why it cannot start), from a cluster's status as read from etcd.
 */
import assert from "node:assert/strict";
import {
  type ClusterStatus,
  formatClusterStatus,
  type MemberStatus,
  switchoverLeader,
} from "../../src/cli/cluster_commands.ts";

function member(name: string, role: MemberStatus["role"], lsn = 10): MemberStatus {
  return {
    name,
    role,
    address: `127.0.0.1:${5000 + name.length}`,
    epoch: 2,
    lsn,
    lagRecords: role === "down" ? undefined : 0,
    leaseLeftSeconds: role === "down" ? -1 : 4,
    health: role === "down" ? "not registered (stopped, or cannot reach etcd)" : "healthy",
    reportedAtMs: 0,
  };
}

const STATUS: ClusterStatus = {
  cluster: "c1",
  leader: "a",
  epoch: 2,
  members: [member("a", "leader"), member("b", "replica", 8), member("c", "down")],
};

Deno.test("switchover: asks the leader, for a registered member only", () => {
  assert.equal((switchoverLeader(STATUS, "b") as MemberStatus).name, "a");
  assert.equal(
    switchoverLeader(STATUS, "c"),
    "no registered member of c1 is named c (members: a, b)",
  );
  assert.equal(
    switchoverLeader(STATUS, "zz"),
    "no registered member of c1 is named zz (members: a, b)",
  );
  assert.equal(switchoverLeader({ ...STATUS, leader: "" }, "b"), "cluster c1 has no leader now");
});

Deno.test("cluster status: a table with the leader in its title; down members show no figures", () => {
  const text = formatClusterStatus(STATUS);
  const lines = text.trimEnd().split("\n");
  assert.equal(lines[0], "cluster c1: leader a, epoch 2");
  assert.match(lines[1], /^MEMBER\s+ROLE\s+ADDRESS\s+EPOCH\s+LSN\s+LAG\s+LEASE\s+HEALTH$/);
  assert.match(lines[3], /^b\s+replica\s+127\.0\.0\.1:5001\s+2\s+8\s+0\s+4s\s+healthy$/);
  assert.match(lines[4], /^c\s+down\s+127\.0\.0\.1:5001\s+not registered/);
  assert.match(formatClusterStatus({ ...STATUS, leader: "" }), /^cluster c1: NO LEADER/);
});
