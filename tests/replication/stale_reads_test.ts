/**
 * The replica's stale-read gate (`REPLICA_MAX_STALENESS_MS`) decided without sockets: which
 * commands it refuses past the bound, and what the refusal says.
 */
import assert from "node:assert/strict";
import { StaleReadGate } from "../../src/replication/stale_reads.ts";
import { BUILT_IN_COMMANDS } from "../../src/server/commands.ts";
import type { CommandSpec } from "../../src/server/hooks.ts";

function spec(name: string): CommandSpec {
  const found = BUILT_IN_COMMANDS.get(name);
  return found ?? { minArgs: 0, maxArgs: Infinity, handler: () => {} };
}

const DOWN = { status: "down", stalenessMs: 6000, lastIoMs: 6000 } as const;

Deno.test("stale reads: 0 serves however stale; within the bound reads are served", () => {
  assert.equal(new StaleReadGate(0).refusal("GET", spec("GET"), DOWN), undefined);
  const gate = new StaleReadGate(5000);
  assert.equal(gate.refusal("GET", spec("GET"), { ...DOWN, stalenessMs: 5000 }), undefined);
  assert.equal(gate.refused, 0);
});

Deno.test("stale reads: past the bound reads get MASTERDOWN; writes, admin and introspection do not", () => {
  const gate = new StaleReadGate(5000);
  for (const name of ["GET", "READ", "MGET", "READRANGE", "EXISTS", "DBSIZE", "SOMENEWREAD"]) {
    const refusal = gate.refusal(name, spec(name), DOWN);
    assert.equal(refusal?.type, "error", name);
    assert.equal(refusal.type === "error" ? refusal.code : "", "MASTERDOWN", name);
  }
  assert.equal(gate.refused, 7);
  // Writes are the READONLY check's (a replica refuses them anyway); the stream, roles, INFO and
  // the clients' probes are served.
  for (const name of ["PUT", "SET", "REPLICATE", "INFO", "PING", "ROLE", "TOPOLOGY", "AUTH"]) {
    assert.equal(gate.refusal(name, spec(name), DOWN), undefined, name);
  }
});

Deno.test("stale reads: the refusal says why: link down and since when, never heard, or behind", () => {
  const gate = new StaleReadGate(5000);
  const message = (link: { status: "up" | "down"; stalenessMs: number; lastIoMs: number }) => {
    const refusal = gate.refusal("GET", spec("GET"), link);
    return refusal?.type === "error" ? refusal.message : "";
  };
  assert.match(
    message(DOWN),
    /^Link with MASTER is down .* 6000 ms old \(last contact 6\.0 s ago\)/,
  );
  assert.match(message(DOWN), /REPLICA_MAX_STALENESS_MS 5000; read from the master or retry$/);
  assert.match(
    message({ status: "down", stalenessMs: Infinity, lastIoMs: -1 }),
    /no master has been heard from since this replica started/,
  );
  assert.match(
    message({ status: "up", stalenessMs: 7000, lastIoMs: 0 }),
    /up but .* 7000 ms behind/,
  );
});
