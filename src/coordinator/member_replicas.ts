/**
 * A coordinated master's replica set follows the registered members: a new member is added, one
 * that registered again (a new lease: it restarted) is retried at once instead of at the next
 * health check, and one that registered at another address (restarted on another port) is
 * replicated to at the new address and no longer at the old one.
 *
 * @module
 */
import { type HostPort, parseHostPort } from "../config.ts";
import { getLog } from "../log.ts";
import type { NodeRole } from "../replication/node_role.ts";
import type { MemberView } from "./election.ts";

const log = getLog("coordinator");

/** The addresses of the members other than `selfName` (a malformed one is skipped). */
export function memberAddresses(members: Iterable<MemberView>, selfName: string): HostPort[] {
  const addresses: HostPort[] = [];
  for (const { record } of members) {
    if (record.name === selfName) continue;
    try {
      addresses.push(parseHostPort(record.address, "member address"));
    } catch {
      // parseMember keeps only well-formed records; an address that is not host:port is skipped.
    }
  }
  return addresses;
}

/** What a master remembers of its members between two syncs; see the module comment. */
export class MemberReplicas {
  /** The lease each member was last seen with. */
  readonly #leases = new Map<string, string>();
  /** The address each member was last replicated to. */
  readonly #addresses = new Map<string, string>();

  /** Brings the replica set of master `role` in line with `members`. */
  sync(role: NodeRole, members: Iterable<MemberView>, selfName: string): void {
    if (role.replica || (role.deposed !== undefined && role.writeFence === undefined)) return;
    const listed = new Set(role.replicator?.replicaManager.replicas.map((r) => r.address) ?? []);
    const added: MemberView[] = [];
    for (const member of members) {
      const { record } = member;
      if (record.name === selfName) continue;
      const knownLease = this.#leases.get(record.name);
      const before = this.#addresses.get(record.name);
      this.#leases.set(record.name, record.lease);
      this.#addresses.set(record.name, record.address);
      if (before !== undefined && before !== record.address && listed.has(before)) {
        log.info("member {name} moved from {before} to {address}: replicating to the new one", {
          event: "member_moved",
          name: record.name,
          before,
          address: record.address,
        });
        role.removeReplica(before).catch((error) =>
          log.warn("could not remove replica {before}: {error}", { before, error: String(error) })
        );
      }
      if (!listed.has(record.address)) added.push(member);
      else if (knownLease !== undefined && knownLease !== record.lease) {
        role.replicator?.retryNow(record.address);
      }
    }
    const addresses = memberAddresses(added, selfName);
    if (addresses.length > 0) role.addReplicas(addresses);
  }
}
