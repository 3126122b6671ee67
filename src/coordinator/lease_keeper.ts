/**
 * This node's lease in etcd, and how long a master may trust it. The lease is renewed (or taken
 * anew when etcd forgot it) every tick; a renewal sent at `sent` and answered with a TTL makes
 * the lease trusted until `sent + TTL - driftMarginMs` (Patroni's rule: the send time, not the
 * answer's, and a margin for clock drift between this node and etcd). The deadline is kept on
 * the monotonic clock and on the wall clock (see `FenceFacts.trustedUntilWallMs`), and never
 * moves back while the lease lives.
 *
 * @module
 */
import { getLog } from "../log.ts";
import type { EtcdClient } from "./etcd_client.ts";

const log = getLog("coordinator");

/** The lease requests of etcd's client. */
export type LeaseClient = Pick<EtcdClient, "grantLease" | "keepAlive" | "revoke">;

/** The clocks a lease is trusted by (defaults: `performance.now()` and `Date.now()`). */
export interface LeaseClocks {
  /** Monotonic ms. */
  nowMs(): number;
  /** Wall-clock ms since the epoch. */
  wallMs(): number;
}

const SYSTEM_CLOCKS: LeaseClocks = { nowMs: () => performance.now(), wallMs: () => Date.now() };

/** One node's lease; see the module comment. */
export class LeaseKeeper {
  readonly #client: LeaseClient;
  readonly #ttlSeconds: number;
  readonly #driftMarginMs: number;
  readonly #clocks: LeaseClocks;
  #id = "";
  /** Monotonic ms: the lease can be trusted until then. */
  #trustedUntilMs = 0;
  /** Monotonic ms: the send time of the last successful renewal. */
  #lastRenewalMs = 0;
  /** The trusted deadline on the wall clock. */
  #trustedUntilWallMs = 0;

  constructor(
    client: LeaseClient,
    timing: { ttlSeconds: number; driftMarginMs: number },
    clocks: LeaseClocks = SYSTEM_CLOCKS,
  ) {
    this.#client = client;
    this.#ttlSeconds = timing.ttlSeconds;
    this.#driftMarginMs = timing.driftMarginMs;
    this.#clocks = clocks;
  }

  /** The lease's id in etcd ("" when this node holds none). */
  get id(): string {
    return this.#id;
  }

  /** Monotonic ms until which the lease can be trusted (0: not at all). */
  get trustedUntilMs(): number {
    return this.#trustedUntilMs;
  }

  /** The same deadline on the wall clock. */
  get trustedUntilWallMs(): number {
    return this.#trustedUntilWallMs;
  }

  /** Monotonic ms: when the last successful renewal was sent. */
  get lastRenewalMs(): number {
    return this.#lastRenewalMs;
  }

  /** Milliseconds the lease can still be trusted (0: not at all). */
  leftMs(): number {
    return Math.max(0, this.#trustedUntilMs - this.#clocks.nowMs());
  }

  /** Renews the lease (or takes a new one): extends how long a master may acknowledge writes. */
  async renew(): Promise<void> {
    const sentMs = this.#clocks.nowMs();
    const sentWallMs = this.#clocks.wallMs();
    if (this.#id !== "") {
      const ttlSeconds = await this.#client.keepAlive(this.#id);
      if (ttlSeconds > 0) {
        this.#trust(sentMs, sentWallMs, ttlSeconds);
        return;
      }
      log.warn("lease {lease} expired at etcd: registering again with a new one", {
        event: "lease_lost",
        lease: this.#id,
      });
      this.forget();
    }
    const granted = await this.#client.grantLease(this.#ttlSeconds);
    this.#id = granted.id;
    this.#trust(sentMs, sentWallMs, granted.ttlSeconds);
  }

  /** etcd does not know the lease any more: none is held, and nothing is trusted. */
  forget(): void {
    this.#id = "";
    this.distrust();
  }

  /** Nothing is trusted from now on (a shutdown); the lease is still held. */
  distrust(): void {
    this.#trustedUntilMs = 0;
    this.#trustedUntilWallMs = 0;
  }

  /** Gives the lease back (its keys go at once); a lease etcd does not know is fine. */
  async revoke(): Promise<void> {
    if (this.#id === "") return;
    await this.#client.revoke(this.#id);
  }

  #trust(sentMs: number, sentWallMs: number, ttlSeconds: number): void {
    const trustedMs = ttlSeconds * 1000 - this.#driftMarginMs;
    this.#lastRenewalMs = sentMs;
    this.#trustedUntilMs = Math.max(this.#trustedUntilMs, sentMs + trustedMs);
    this.#trustedUntilWallMs = Math.max(this.#trustedUntilWallMs, sentWallMs + trustedMs);
  }
}
