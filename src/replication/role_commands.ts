/**
 * The commands that read or change a node's place in the cluster, each a thin layer over the
 * {@link NodeRole}:
 *
 * - `PROMOTE`: replica → master in a new epoch (the highest known + 1).
 * - `REPLICAOF host port [EPOCH n]` (alias `SLAVEOF`): become (or stay) a replica that expects
 *   the master at host:port, in epoch n when given (older masters are fenced at once); on a
 *   master this demotes it at runtime. `REPLICAOF NO ONE [EPOCH n]`: replica → master, as
 *   `PROMOTE` (in epoch n when given). Redis's shape; both answer `+OK`.
 * - `REPLICAS [LIST] | ADD h:p[prefixes] | REMOVE h:p | FILTER h:p[prefixes]`: a master's replica
 *   set, at runtime; `[p1,p2]` after an address is its key filter (selective replication), which
 *   FILTER changes (without brackets: every key again), resyncing that replica.
 * - `ROLE` and `TOPOLOGY`: what the node says about itself and its cluster (`topology.ts`).
 *
 * `PROMOTE`, `REPLICAOF` and `REPLICAS` are admin commands: with a replication token, only a
 * connection that proved it may run them.
 *
 * @module
 */
import { KeyFilter, KeyFilterError } from "./key_filter.ts";
import { formatHostPort, type HostPort, parseAddresses, parseHostPort } from "../config.ts";
import { getLog } from "../log.ts";
import type { Reply } from "../protocol/mod.ts";
import { CommandError, type CommandSpec, type ServerNode } from "../server/hooks.ts";
import { MAX_EPOCH } from "../storage/mod.ts";
import type { NodeRole } from "./node_role.ts";
import { RoleChangeError } from "./role_rules.ts";
import { masterListeningAddress, writeGuarantee } from "./replication_info.ts";
import { roleReply, topologyDocument, type TopologyFacts } from "./topology.ts";

const log = getLog("replication");
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Runs a role change, answering a refusal as the client's error. */
async function changing<T>(change: () => Promise<T>): Promise<T> {
  try {
    return await change();
  } catch (error) {
    if (error instanceof RoleChangeError) throw new CommandError(error.message);
    throw error;
  }
}

/** {@link masterListeningAddress} as `host:port` text ("" when unknown). */
function listeningAddressText(announced: string, streamPeer: string): string {
  const address = masterListeningAddress(announced, streamPeer);
  return address === undefined ? "" : formatHostPort(address);
}

/** What ROLE and TOPOLOGY report about this node and its cluster. */
export function topologyFacts(node: ServerNode, role: NodeRole): TopologyFacts {
  const info = role.replica ? role.applier?.getInfo() : undefined;
  return {
    address: role.advertisedAddress,
    runId: node.runId,
    role: role.current,
    epoch: role.epoch,
    lsn: node.store.lastLsn,
    deposed: role.deposed,
    replicationMode: node.config.REPLICATION_MODE,
    master: info === undefined ? undefined : {
      // In a chain, the master at its head (what the upstream reported); else, as INFO names
      // it, the upstream (a master listening on a wildcard is named by its stream's host).
      address: (info.chainDepth > 1 ? info.originAddress : "") ||
        listeningAddressText(info.masterAdvertisedAddress, info.masterAddress) ||
        role.followedMaster,
      epoch: info.masterEpoch,
      lsn: info.chainDepth > 1 ? info.originKnownLsn : info.masterKnownLsn,
      linkStatus: info.masterLinkStatus,
      lastIoMs: info.masterLastIoMs,
      fullSyncInProgress: info.fullSyncInProgress,
      // End to end (the same as this hop's when the upstream is the master).
      lagRecords: info.originLagRecords,
      lagMs: info.originLagMs,
    },
    upstream: info === undefined ? undefined : {
      address: listeningAddressText(info.masterAdvertisedAddress, info.masterAddress) ||
        role.followedMaster,
      linkStatus: info.masterLinkStatus,
      lastIoMs: info.masterLastIoMs,
      lagRecords: info.masterLagRecords,
      lagMs: info.masterLagMs,
    },
    chain: info === undefined ? undefined : { depth: Math.max(1, info.chainDepth) },
    replicas: role.downstream?.getStats().replicas ?? [],
    coordinator: role.coordinatorTopology(),
    keyFilter: role.replica ? role.state.keyFilter : undefined,
  };
}

/** `PROMOTE` on this node, logged as the operator's. */
async function promote(node: ServerNode, role: NodeRole, peer: string, epoch?: number) {
  const promotion = await changing(() => role.promote({ epoch, by: peer }));
  log.warn(
    "PROMOTED to master by {peer}: epoch {epoch}, data up to LSN {lsn} kept; serving writes " +
      "({guarantee}). Add replicas with REPLICAS ADD host:port, and make it permanent in " +
      "this node's settings (no --replica; --replicas for its replicas): until then it " +
      "refuses to restart as a replica",
    {
      event: "promoted",
      peer,
      epoch: promotion.epoch,
      lsn: promotion.lsn,
      markerLsn: promotion.markerLsn,
      guarantee: writeGuarantee(node.config, 0, 0),
    },
  );
  return promotion;
}

/** `REPLICAOF host port [EPOCH n]` / `REPLICAOF NO ONE [EPOCH n]`. */
function replicaOfSpec(node: ServerNode, role: NodeRole): CommandSpec {
  return {
    minArgs: 2,
    maxArgs: 4,
    admin: true,
    handler: async (args, _out, ctx): Promise<Reply> => {
      const words = args.map((a) => decoder.decode(a));
      let epoch: number | undefined;
      if (words.length === 4) {
        if (words[2].toUpperCase() !== "EPOCH") throw new CommandError(REPLICAOF_USAGE);
        epoch = /^\d{1,10}$/.test(words[3]) ? Number(words[3]) : NaN;
        if (!(epoch <= MAX_EPOCH)) {
          throw new CommandError(`EPOCH must be a whole number from 0 to ${MAX_EPOCH}`);
        }
      } else if (words.length !== 2) {
        throw new CommandError(REPLICAOF_USAGE);
      }
      const peer = ctx.connection.peer;
      if (words[0].toUpperCase() === "NO" && words[1].toUpperCase() === "ONE") {
        // Redis answers OK to a master too; so does kvstore, when no epoch is asked for.
        if (!role.replica && epoch === undefined) return { type: "ok" };
        await promote(node, role, peer, epoch);
        return { type: "ok" };
      }
      let master: HostPort;
      try {
        master = parseHostPort(`${words[0]}:${words[1]}`, "master address");
      } catch (error) {
        throw new CommandError(error instanceof Error ? error.message : String(error));
      }
      await changing(() => role.follow(master, { epoch, by: peer }));
      return { type: "ok" };
    },
  };
}

const REPLICAOF_USAGE = "usage: REPLICAOF host port [EPOCH n] | REPLICAOF NO ONE [EPOCH n]";

const REPLICAS_USAGE = "usage: REPLICAS [LIST] | REPLICAS ADD host:port[prefix,...] | " +
  "REPLICAS REMOVE host:port | REPLICAS FILTER host:port[prefix,...]";

/** `REPLICAS [LIST] | ADD host:port[prefixes] | REMOVE host:port | FILTER host:port[prefixes]`. */
async function replicas(node: ServerNode, role: NodeRole, args: Uint8Array[]): Promise<Reply> {
  const sub = args.length === 0 ? "LIST" : decoder.decode(args[0]).toUpperCase();
  const listed = () => new Set(role.downstream?.replicaManager.replicas.map((r) => r.address));
  if (sub === "LIST" && args.length <= 1) {
    const replicas = role.downstream?.replicaManager.replicas ?? [];
    return {
      type: "array",
      items: replicas.map((r) => ({
        type: "value",
        value: encoder.encode(r.address + (r.keyFilter?.toString() ?? "")),
      })),
    };
  }
  if ((sub !== "ADD" && sub !== "REMOVE" && sub !== "FILTER") || args.length !== 2) {
    throw new CommandError(REPLICAS_USAGE);
  }
  let addresses: HostPort[];
  try {
    addresses = parseAddresses(decoder.decode(args[1]), "replica address");
  } catch (error) {
    throw new CommandError(error instanceof Error ? error.message : String(error));
  }
  if (addresses.length === 0) throw new CommandError(`REPLICAS ${sub} needs host:port`);
  for (const address of addresses) {
    try {
      KeyFilter.of(address.keyPrefixes);
    } catch (error) {
      if (error instanceof KeyFilterError) throw new CommandError(error.message);
      throw error;
    }
  }
  if (sub === "FILTER") return setFilters(role, addresses, listed());
  if (sub === "ADD") {
    for (const address of addresses) {
      const text = formatHostPort(address);
      if (listed().has(text)) throw new CommandError(`replica ${text} is already listed`);
      if (address.host === node.host && address.port === node.port) {
        throw new CommandError(`${text} is this node itself`);
      }
    }
    await changing(() => Promise.resolve(role.addReplicas(addresses)));
    return { type: "ok" };
  }
  const remaining = listed().size - addresses.length;
  const { config } = node;
  if (!role.replica && config.REPLICATION_MODE === "sync" && remaining < config.SYNC_REPLICAS) {
    throw new CommandError(
      `removing would leave ${remaining} replicas, fewer than SYNC_REPLICAS ${config.SYNC_REPLICAS}`,
    );
  }
  for (const address of addresses) {
    const text = formatHostPort(address);
    if (!listed().has(text)) {
      throw new CommandError(
        `no replica ${text} (replicas: ${[...listed()].join(", ") || "none"})`,
      );
    }
  }
  for (const address of addresses) await role.removeReplica(formatHostPort(address));
  return { type: "ok" };
}

/** `REPLICAS FILTER host:port[prefixes]`: each listed replica gets its new filter and a resync. */
function setFilters(role: NodeRole, addresses: HostPort[], listed: Set<string>): Reply {
  for (const address of addresses) {
    const text = formatHostPort(address);
    if (!listed.has(text)) {
      throw new CommandError(`no replica ${text} (replicas: ${[...listed].join(", ") || "none"})`);
    }
  }
  for (const address of addresses) {
    role.setKeyFilter(formatHostPort(address), address.keyPrefixes ?? []);
  }
  return { type: "ok" };
}

/** The role commands of a node. */
export function roleCommands(node: ServerNode, role: NodeRole): Record<string, CommandSpec> {
  const replicaOf = replicaOfSpec(node, role);
  return {
    PROMOTE: {
      minArgs: 0,
      maxArgs: 0,
      admin: true,
      handler: async (_args, _out, ctx): Promise<Reply> => {
        const { epoch, lsn } = await promote(node, role, ctx.connection.peer);
        return { type: "status", text: `PROMOTED epoch ${epoch} lsn ${lsn}` };
      },
    },
    REPLICAOF: replicaOf,
    SLAVEOF: replicaOf,
    REPLICAS: {
      minArgs: 0,
      maxArgs: 2,
      admin: true,
      handler: (args) => replicas(node, role, args.map((a) => a.slice())),
    },
    ROLE: {
      minArgs: 0,
      maxArgs: 0,
      handler: (_args, out) => out.reply(roleReply(topologyFacts(node, role))),
    },
    TOPOLOGY: {
      minArgs: 0,
      maxArgs: 0,
      handler: (_args, out) =>
        out.textValue(JSON.stringify(topologyDocument(topologyFacts(node, role)))),
    },
  };
}
