/**
 * Replication: a master ships its log to its replicas over one persistent connection each, in
 * LSN order (async by default, sync on request), with health monitoring, catch-up from the log,
 * automatic full sync and lag figures. This file is the module's public surface; the stream
 * protocol is described in `stream_protocol.ts`.
 *
 * @module
 */
export {
  NodeRole,
  nodeRoleOf,
  type NodeRoleOptions,
  type Promotion,
  type RoleName,
  type WriteFences,
} from "./node_role.ts";
export { newerEpochOf, RoleChangeError } from "./role_rules.ts";
export type { RoleEvent } from "./role_events.ts";
export {
  masterInfoFields,
  replicationExtension,
  replicationExtensionWith,
  type ReplicationOptions,
  replicatorOf,
} from "./extension.ts";
export {
  replicaPolicyFromConfig,
  type ReplicationSource,
  Replicator,
  type ReplicatorStats,
  type SourceSnapshot,
  SyncReplicationError,
} from "./replicator.ts";
export { ReplicaManager, type ReplicaNodeStatus, type ReplicaStatus } from "./replica_manager.ts";
export { ReplicaNode, type ReplicaPolicy, type ReplicaState } from "./replica_node.ts";
export {
  type ApplierReply,
  ReplicaApplier,
  type ReplicaInfo,
  type ReplicaStore,
  ReplicateError,
} from "./replica_applier.ts";
export { masterSourceOf, replicaStoreOf } from "./store_adapters.ts";
