/**
 * The lease's trust, without etcd: a fake lease client and clocks passed in. A renewal sent at
 * `t` and answered with a TTL is trusted until `t + TTL - margin` on both clocks; a lease etcd
 * forgot is taken anew; the deadline never moves back while the lease lives.
 */
import assert from "node:assert/strict";
import { type LeaseClient, LeaseKeeper } from "../../src/coordinator/lease_keeper.ts";

/** A lease client that answers from a script and records what it was asked. */
class FakeLeases implements LeaseClient {
  calls: string[] = [];
  /** The TTL keepAlive answers (0: etcd does not know the lease). */
  keepAliveTtlSeconds = 5;
  #next = 1;

  grantLease(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    const id = `lease-${this.#next++}`;
    this.calls.push(`grant ${ttlSeconds} -> ${id}`);
    return Promise.resolve({ id, ttlSeconds });
  }

  keepAlive(id: string): Promise<number> {
    this.calls.push(`keepalive ${id}`);
    return Promise.resolve(this.keepAliveTtlSeconds);
  }

  revoke(id: string): Promise<void> {
    this.calls.push(`revoke ${id}`);
    return Promise.resolve();
  }
}

function keeper() {
  const client = new FakeLeases();
  const clock = { nowMs: 1000, wallMs: 1_700_000_000_000 };
  const lease = new LeaseKeeper(client, { ttlSeconds: 5, driftMarginMs: 500 }, {
    nowMs: () => clock.nowMs,
    wallMs: () => clock.wallMs,
  });
  return { client, clock, lease };
}

Deno.test("lease keeper: the first renewal takes a lease, trusted from its send time minus the margin", async () => {
  const { client, clock, lease } = keeper();
  assert.equal(lease.id, "");
  assert.equal(lease.leftMs(), 0);
  await lease.renew();
  assert.equal(lease.id, "lease-1");
  assert.deepEqual(client.calls, ["grant 5 -> lease-1"]);
  assert.equal(lease.trustedUntilMs, 1000 + 5000 - 500);
  assert.equal(lease.trustedUntilWallMs, clock.wallMs + 4500);
  assert.equal(lease.lastRenewalMs, 1000);
  clock.nowMs = 3000;
  assert.equal(lease.leftMs(), 2500);
  clock.nowMs = 9000;
  assert.equal(lease.leftMs(), 0);
});

Deno.test("lease keeper: keep-alives extend the deadline, a shorter answer never moves it back", async () => {
  const { client, clock, lease } = keeper();
  await lease.renew();
  clock.nowMs = 2000;
  clock.wallMs += 1000;
  await lease.renew();
  assert.deepEqual(client.calls, ["grant 5 -> lease-1", "keepalive lease-1"]);
  assert.equal(lease.trustedUntilMs, 2000 + 4500);
  assert.equal(lease.lastRenewalMs, 2000);
  client.keepAliveTtlSeconds = 1; // etcd answers a lease near its end
  clock.nowMs = 2100;
  await lease.renew();
  assert.equal(lease.trustedUntilMs, 6500, "the deadline stays");
  assert.equal(lease.lastRenewalMs, 2100);
});

Deno.test("lease keeper: a lease etcd forgot is taken anew, from the failed renewal's send time", async () => {
  const { client, clock, lease } = keeper();
  await lease.renew();
  client.keepAliveTtlSeconds = 0;
  clock.nowMs = 2000;
  await lease.renew();
  assert.equal(lease.id, "lease-2");
  assert.deepEqual(client.calls.slice(1), ["keepalive lease-1", "grant 5 -> lease-2"]);
  assert.equal(lease.trustedUntilMs, 2000 + 4500);
});

Deno.test("lease keeper: forget and distrust drop the trust; revoke gives back only a held lease", async () => {
  const { client, lease } = keeper();
  await lease.revoke();
  assert.deepEqual(client.calls, [], "no lease: nothing to revoke");
  await lease.renew();
  lease.distrust();
  assert.equal(lease.trustedUntilMs, 0);
  assert.equal(lease.trustedUntilWallMs, 0);
  assert.equal(lease.id, "lease-1", "still held");
  await lease.revoke();
  assert.deepEqual(client.calls.at(-1), "revoke lease-1");
  lease.forget();
  assert.equal(lease.id, "");
  await lease.renew();
  assert.equal(lease.id, "lease-2");
});
