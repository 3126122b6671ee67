/**
 * The client's reading of a `TOPOLOGY` answer, without a node: a good answer's fields, and a
 * typed error naming what is wrong in a bad one (the master, the replicas, the bound).
 */
import assert from "node:assert/strict";
import { parseTopologyReply, TopologyReplyError } from "../../src/client/topology.ts";

const encoder = new TextEncoder();

function answer(overrides: Record<string, unknown> = {}): Uint8Array {
  return encoder.encode(JSON.stringify({
    version: 1,
    node: {
      address: "127.0.0.1:5556",
      run_id: "r",
      role: "replica",
      epoch: 2,
      lsn: 40,
      deposed: false,
    },
    master: {
      address: "127.0.0.1:5555",
      epoch: 2,
      lsn: 42,
      link_status: "up",
      last_io_ms: 3,
      full_sync_in_progress: false,
      lag_ms: 1,
    },
    replicas: [{
      address: "127.0.0.1:5557",
      state: "streaming",
      healthy: true,
      lsn: 40,
      lag_records: 0,
      lag_ms: 0,
      key_filter: ["a:"],
    }],
    ...overrides,
  }));
}

Deno.test("topology reply: the node, its master and its replicas", () => {
  const report = parseTopologyReply(answer(), 8);
  assert.equal(report.role, "replica");
  assert.equal(report.address, "127.0.0.1:5556");
  assert.deepEqual(report.master, {
    address: "127.0.0.1:5555",
    epoch: 2,
    lsn: 42,
    linkUp: true,
    lastIoMs: 3,
    fullSync: false,
    lagMs: 1,
  });
  assert.equal(report.replicas.length, 1);
  assert.equal(report.replicas[0].filtered, true);
  assert.equal(report.filtered, false);
  assert.equal(parseTopologyReply(answer({ master: null }), 8).master, undefined);
});

Deno.test("topology reply: a bad master, bad replicas or too many of them are refused", () => {
  const refused = (reply: Uint8Array, message: RegExp) =>
    assert.throws(
      () => parseTopologyReply(reply, 1),
      (error) => error instanceof TopologyReplyError && message.test(error.message),
    );
  refused(answer({ master: { link_status: "sideways" } }), /link_status is not up or down/);
  refused(answer({ replicas: "none" }), /replicas is not a list/);
  const two = JSON.parse(new TextDecoder().decode(answer())).replicas;
  refused(answer({ replicas: [...two, ...two] }), /2 replicas, more than the client's maxNodes 1/);
  refused(answer({ replicas: [{ address: "nowhere" }] }), /"address" "nowhere" is not host:port/);
  refused(answer({ version: 2 }), /unknown version 2/);
  refused(encoder.encode("{"), /not JSON/);
});
