/**
 * The kvstore server: `startServer(config)` and the hooks other parts plug in through.
 *
 * @module
 */
export {
  BUILT_IN_COMMANDS,
  READ_ONLY_MESSAGE,
  REPLACEABLE_COMMANDS,
  type ReplaceableCommand,
  REPLICATE_ON_MASTER_MESSAGE,
} from "./commands.ts";
export {
  type CommandContext,
  CommandError,
  type CommandHandler,
  type CommandSpec,
  type ConnectionInfo,
  type InfoFields,
  type MasterLinkStatus,
  type ReplicaLinkStatus,
  type ReplicationStatus,
  type RoleGate,
  type ServerExtension,
  type ServerHooks,
  type ServerNode,
  type ServerStats,
} from "./hooks.ts";
export { type RunningServer, startServer, type StartServerOptions } from "./server.ts";
