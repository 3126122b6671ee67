/**
 * What a node says about the cluster it is part of, for clients that find the master and choose
 * replicas by themselves (`KVClient({ nodes })`), for Redis tooling, and for people:
 *
 * - `ROLE`: Redis's reply, shape for shape (`redis-cli ROLE`, Sentinel-style tools): on a master
 *   `["master", <lsn>, [[host, "port", "ackedLsn"], ...]]` (the replicas connected now), on a
 *   replica `["slave", masterHost, masterPort, state, <appliedLsn>]` with state `connect`,
 *   `sync` (a full sync is running) or `connected`. The offsets are LSNs (kvstore counts
 *   records, Redis counts bytes; both only ever grow within one history).
 * - `TOPOLOGY`: one JSON document (a bulk string in RESP, one line in text) with this node, its
 *   master as far as it knows it, and on a master every replica's address, link state, health,
 *   acknowledged LSN and lag. Any node answers; a replica answers with what it knows of its
 *   master (the address and epoch from the master's HELLO, how long ago it heard from it). In a
 *   chain (cascading) `master` is the master at the chain's head (what a client writes to) and
 *   `upstream` the node the replica streams from; a replica with replicas of its own lists them
 *   in `replicas`. See {@link TopologyDocument} for the fields; a coordinator (automatic
 *   failover) adds its own field later without changing these.
 *
 * Pure: the replication extension gathers the {@link TopologyFacts}; this module shapes them.
 *
 * @module
 */
import type { Reply } from "../protocol/mod.ts";
import type { ReplicaNodeStatus } from "./replica_manager.ts";

/** What a replica knows of its master. */
export interface MasterFacts {
  /** Where clients reach the master (`host:port`), or "" when it never said. */
  address: string;
  /** The epoch its last HELLO announced (0: none yet). */
  epoch: number;
  /** Highest LSN the master is known to have. */
  lsn: number;
  /** `up` while its stream is open and heard from recently. */
  linkStatus: "up" | "down";
  /** Milliseconds since the master was last heard from (-1: never). */
  lastIoMs: number;
  /** A full sync from the master is running (this replica's data is incomplete). */
  fullSyncInProgress: boolean;
  /** End to end: records the master is known to have that this replica has not applied. */
  lagRecords: number;
  /** End to end: ms since this replica first knew of a master record it has not applied. */
  lagMs: number;
}

/** The node a replica streams from (its master, or in a chain a replica of it). */
export interface UpstreamFacts {
  /** Where clients reach it (`host:port`), "" when it never said. */
  address: string;
  linkStatus: "up" | "down";
  /** Milliseconds since it was last heard from (-1: never). */
  lastIoMs: number;
  /** This hop's lag: its records not applied here, and for how long (ms). */
  lagRecords: number;
  lagMs: number;
}

/** Where a replica stands in its chain. */
export interface ChainFacts {
  /** Hops from the master: 0 on a master, 1 for its replicas, 2 for theirs, ... */
  depth: number;
}

/** Everything ROLE and TOPOLOGY report, gathered by the replication extension. */
export interface TopologyFacts {
  /** Where clients reach this node (`ADVERTISE_ADDRESS`, else where it listens). */
  address: string;
  /** The node's `run_id` (new at every start). */
  runId: string;
  role: "master" | "replica";
  /** The newest epoch this node knows of. */
  epoch: number;
  /** Its last LSN: the master's last write, the replica's last applied record. */
  lsn: number;
  /** Why this master refuses writes (a newer master exists), or undefined. */
  deposed: string | undefined;
  /** The master's replication mode (`async`/`sync`); a replica's is the one it takes if promoted. */
  replicationMode: "async" | "sync";
  /** A replica: its master (at the chain's head), as far as it knows it. */
  master: MasterFacts | undefined;
  /** A replica: the node it streams from (its master, or in a chain a replica of it). */
  upstream?: UpstreamFacts;
  /** A replica: where it stands in its chain (absent: depth 1). */
  chain?: ChainFacts;
  /** Its replicas: a master's, or a replica's own (cascading); none when it has none. */
  replicas: readonly ReplicaNodeStatus[];
  /** A filtered replica: the key prefixes of the data it holds (absent or empty: every key). */
  keyFilter?: readonly string[];
  /** The failover coordinator's view (absent without one). */
  coordinator?: TopologyCoordinator;
}

/** What a failover coordinator (etcd) says in TOPOLOGY. */
export interface TopologyCoordinator {
  kind: "etcd";
  cluster: string;
  /** This node's name in the cluster. */
  name: string;
  /** `ok` while etcd answers this node, else `unreachable`. */
  etcd: "ok" | "unreachable";
  /** The leader key: its holder's name, address and epoch ("" and 0 when there is none). */
  leader: string;
  leader_address: string;
  leader_epoch: number;
  /** How long this node's lease can still be trusted, in ms. */
  lease_left_ms: number;
  /** Why this master takes no writes now ("" when it does, or on a replica). */
  write_fence: string;
}

/** One replica in a {@link TopologyDocument}. */
export interface TopologyReplica {
  address: string;
  /** `streaming`, `catching_up`, `full_sync` or `down`, as the master sees its link. */
  state: string;
  healthy: boolean;
  /** Highest LSN it acknowledged. */
  lsn: number;
  lag_records: number;
  lag_ms: number;
  /** Its key prefixes when it is filtered (it holds only those keys); `null`: every key. */
  key_filter: string[] | null;
}

/** The JSON document `TOPOLOGY` answers (field names as in `INFO`). */
export interface TopologyDocument {
  /** Format version: a reader refuses a version it does not know. */
  version: 1;
  node: {
    address: string;
    run_id: string;
    role: "master" | "replica";
    epoch: number;
    lsn: number;
    /** True on a master that learned a newer master exists (it refuses writes). */
    deposed: boolean;
    replication_mode: "async" | "sync";
    /** Hops from the master: 0 on a master, 1 for its replicas, 2 for theirs (cascading). */
    chain_depth: number;
    /**
     * On a filtered replica (selective replication), the key prefixes it holds: it has only those
     * keys, is no place to read others, and can never be promoted. `null`: every key.
     */
    key_filter: string[] | null;
  };
  /**
   * The master: this node itself on a master; on a replica what it knows of the master at the
   * head of its chain (`null`: nothing). `lag_records`/`lag_ms` are end to end on a replica.
   */
  master: {
    address: string;
    epoch: number;
    lsn: number;
    /** On a replica: whether its stream from the master is up; a master says `up`. */
    link_status: "up" | "down";
    /** On a replica: ms since it last heard from the master (-1: never); a master says 0. */
    last_io_ms: number;
    /** On a replica: a full sync from the master is running (its data is incomplete). */
    full_sync_in_progress: boolean;
    /** On a replica, end to end: the master's records not applied here (0 on a master). */
    lag_records: number;
    /** On a replica, end to end: how long it has lagged, in ms (0 on a master). */
    lag_ms: number;
  } | null;
  /**
   * On a replica, the node it streams from (the master itself at depth 1, a replica of it in a
   * chain), with this hop's link and lag; `null` on a master or before any stream.
   */
  upstream: {
    address: string;
    link_status: "up" | "down";
    last_io_ms: number;
    lag_records: number;
    lag_ms: number;
  } | null;
  /**
   * The replicas of this node: a master's, or a replica's own (cascading; their lag is this
   * hop's, as this node sees it).
   */
  replicas: TopologyReplica[];
  /** The failover coordinator's view; `null` without one. */
  coordinator: TopologyCoordinator | null;
}

/** The TOPOLOGY document of a node. */
export function topologyDocument(facts: TopologyFacts): TopologyDocument {
  const master = facts.role === "master"
    ? {
      address: facts.address,
      epoch: facts.epoch,
      lsn: facts.lsn,
      link_status: "up" as const,
      last_io_ms: 0,
      full_sync_in_progress: false,
      lag_records: 0,
      lag_ms: 0,
    }
    : facts.master === undefined || (facts.master.address === "" && facts.master.epoch === 0)
    ? null
    : {
      address: facts.master.address,
      epoch: facts.master.epoch,
      lsn: facts.master.lsn,
      link_status: facts.master.linkStatus,
      last_io_ms: facts.master.lastIoMs,
      full_sync_in_progress: facts.master.fullSyncInProgress,
      lag_records: facts.master.lagRecords,
      lag_ms: facts.master.lagMs,
    };
  const upstream = facts.upstream;
  return {
    version: 1,
    node: {
      address: facts.address,
      run_id: facts.runId,
      role: facts.role,
      epoch: facts.epoch,
      lsn: facts.lsn,
      deposed: facts.deposed !== undefined,
      replication_mode: facts.replicationMode,
      chain_depth: facts.role === "master" ? 0 : facts.chain?.depth ?? 1,
      key_filter: facts.keyFilter === undefined || facts.keyFilter.length === 0
        ? null
        : [...facts.keyFilter],
    },
    master,
    upstream: facts.role === "master" || upstream === undefined ? null : {
      address: upstream.address,
      link_status: upstream.linkStatus,
      last_io_ms: upstream.lastIoMs,
      lag_records: upstream.lagRecords,
      lag_ms: upstream.lagMs,
    },
    replicas: facts.replicas.map((r) => ({
      address: r.address,
      state: r.state,
      healthy: r.healthy,
      lsn: r.ackedLsn,
      lag_records: r.lagRecords,
      lag_ms: r.lagMs,
      key_filter: r.keyPrefixes.length === 0 ? null : [...r.keyPrefixes],
    })),
    coordinator: facts.coordinator === undefined ? null : { ...facts.coordinator },
  };
}

const encoder = new TextEncoder();

function bulk(text: string): Reply {
  return { type: "value", value: encoder.encode(text) };
}

/** Splits `host:port` (IPv6 in brackets) into host and port; port 0 when it has none. */
function splitAddress(address: string): [string, number] {
  const colon = address.lastIndexOf(":");
  if (colon <= 0) return [address, 0];
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  return [
    host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host,
    Number.isInteger(port) ? port : 0,
  ];
}

/**
 * Redis's `ROLE` reply: a master lists the replicas connected now (streaming or catching up from
 * its log); a replica names its master (host "" and port 0 before one ever said HELLO) and the
 * state of its link.
 */
export function roleReply(facts: TopologyFacts): Reply {
  if (facts.role === "master") {
    const connected = facts.replicas.filter((r) =>
      r.state === "streaming" || r.state === "catching_up"
    );
    return {
      type: "array",
      items: [
        bulk("master"),
        { type: "integer", value: facts.lsn },
        {
          type: "array",
          items: connected.map((r) => ({
            type: "array",
            items: [bulk(r.host), bulk(String(r.port)), bulk(String(r.ackedLsn))],
          })),
        },
      ],
    };
  }
  // Redis's ROLE names the node a replica streams from (in a chain, its upstream replica).
  const master = facts.master;
  const [host, port] = splitAddress(facts.upstream?.address || master?.address || "");
  const state = master === undefined || master.linkStatus === "down"
    ? "connect"
    : master.fullSyncInProgress
    ? "sync"
    : "connected";
  return {
    type: "array",
    items: [
      bulk("slave"),
      bulk(host),
      { type: "integer", value: port },
      bulk(state),
      { type: "integer", value: facts.lsn },
    ],
  };
}
