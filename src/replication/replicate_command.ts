/**
 * The `REPLICATE` command as a node serves it: on a replica, the master's stream (through the
 * {@link ReplicaApplier}) after epoch fencing, the `DIVERGED` report, and the spec's manual
 * `REPLICATE PUT|BATCHPUT|DELETE` (local writes, accepted only by a replica that never followed a
 * master); on a master (or a replica being promoted), the refusal that fences an older master's
 * stream (`-STALEEPOCH`) and the HELLO of a newer master, which deposes this one. The role and
 * the epochs are the {@link NodeRole}'s; this module only reads them and asks it to change.
 *
 * @module
 */
import { getLog } from "../log.ts";
import type { Reply } from "../protocol/mod.ts";
import { REPLICATE_ON_MASTER_MESSAGE } from "../server/commands.ts";
import {
  type CommandContext,
  CommandError,
  type CommandSpec,
  type ConnectionInfo,
} from "../server/hooks.ts";
import { MAX_EPOCH } from "../storage/mod.ts";
import { RECORD_HEADER_BYTES, recordEpochAt } from "./log_records.ts";
import type { NodeRole } from "./node_role.ts";
import {
  type ApplierReply,
  type ReplicaApplier,
  staleEpochError,
  upper,
} from "./replica_applier.ts";
import {
  MAX_LSN,
  parseHelloRequest,
  parseOrThrow,
  parseStreamNumber,
  RECORD_FORMAT,
} from "./stream_protocol.ts";

const log = getLog("replication");

/** The manual `REPLICATE` writes of the spec, stored as local writes on a replica. */
const LOCAL_WRITE_SUBCOMMANDS: ReadonlySet<string> = new Set(["PUT", "BATCHPUT", "DELETE"]);

function toReply(reply: ApplierReply): Reply {
  return reply.type === "integer" ? { type: "integer", value: reply.value } : reply;
}

function errorReply(error: unknown): Reply {
  if (error instanceof CommandError) {
    return { type: "error", message: error.message, code: error.code };
  }
  return { type: "error", message: error instanceof Error ? error.message : String(error) };
}

/** An applier's answer as the handler's (a promise of it when it is late). */
function applied(result: ApplierReply | Promise<ApplierReply>): Promise<Reply> {
  return result instanceof Promise
    ? result.then(toReply, errorReply)
    : Promise.resolve(toReply(result));
}

/** A stream request that does not parse, as the client's error. */
function asCommandError<T>(parse: () => T): T {
  return parseOrThrow(parse, (message) => new CommandError(message));
}

/** `REPLICATE` on one node; see the module comment. */
export class ReplicateCommand {
  readonly #role: NodeRole;
  /** Connections whose old master was logged as fenced already. */
  readonly #fencedLogged = new WeakSet<ConnectionInfo>();
  /** Records this node discarded because its log diverged from its master's. */
  #discardedRecords = 0;

  constructor(role: NodeRole) {
    this.#role = role;
  }

  /** Records this node discarded because its log diverged from its master's (`DIVERGED`). */
  get discardedRecords(): number {
    return this.#discardedRecords;
  }

  /** The command's spec (it replaces the server's built-in `REPLICATE`). */
  readonly spec: CommandSpec = {
    minArgs: 1,
    maxArgs: Infinity,
    // Not replicaOnly: a master answers the stream of an older master with STALEEPOCH.
    admin: true,
    handler: (args, out, ctx) => {
      if (args.length === 2 && upper(args[0]) === "FORMAT") {
        out.integer(RECORD_FORMAT); // a capability, whatever the role (stream_protocol.ts)
        return;
      }
      const applier = this.#role.applier;
      if (applier === undefined || this.#role.changing) this.#refuse(args, ctx.connection);
      const sub = upper(args[0]);
      if (sub === "DIVERGED") {
        this.#diverged(args, ctx.connection.peer);
        out.ok();
        return;
      }
      if (LOCAL_WRITE_SUBCOMMANDS.has(sub)) return this.#localWrite(sub, args, ctx, applier);
      const result = applier.handle(args, ctx.connection.id, ctx.connection.peer);
      if (result instanceof Promise) return result.then(toReply, errorReply);
      if (result.type !== "integer") {
        out.reply(toReply(result));
        return;
      }
      // Every LOG frame comes here: the integer is written without a reply object.
      if (result.durableLsn !== undefined) {
        ctx.wrote(result.durableLsn); // answered with this read's other replies, once durable
      }
      out.integer(result.value);
    },
  };

  /** A connection closed: the follower forgets it (the link is down when it was the stream). */
  connectionClosed(connection: ConnectionInfo): void {
    const applier = this.#role.applier;
    if (applier !== undefined) applier.connectionClosed(connection.id);
    else this.#role.follower.onClosed(connection.id);
  }

  /**
   * `REPLICATE` where no replica applier serves: on a master, on a replica being promoted, or on
   * a master being demoted. The stream of an older master is refused with STALEEPOCH (which
   * deposes it); a HELLO from a newer master deposes this one; anything else gets the spec's
   * refusal. Always throws.
   */
  #refuse(args: Uint8Array[], connection: ConnectionInfo): never {
    const role = this.#role;
    if (role.changing && role.promotingEpoch === undefined) {
      throw new CommandError(
        "this node is becoming a replica (REPLICAOF): its replicas are draining; retry shortly",
        "TRYAGAIN",
      );
    }
    const own = role.promotingEpoch ?? role.epoch;
    const sub = upper(args[0]);
    let senderEpoch: number | undefined;
    if (sub === "HELLO") {
      senderEpoch = asCommandError(() => parseHelloRequest(args)).epoch;
      if (senderEpoch > own) {
        role.depose(
          senderEpoch,
          `master ${connection.peer} of epoch ${senderEpoch} tried to replicate to this node`,
        );
        throw new CommandError(
          `this node was the master of epoch ${own} and is deposed by the master of epoch ` +
            `${senderEpoch}; it cannot follow it while it runs as a master: REPLICAOF it to the ` +
            `new master, or restart it with --replica (its records past the new master's ` +
            `history are then replaced)`,
        );
      }
    } else if (!LOCAL_WRITE_SUBCOMMANDS.has(sub)) {
      const announced = role.follower.streamEpoch(connection.id);
      if (announced !== undefined) senderEpoch = announced;
      else if (sub === "LOG" && args.length === 2 && args[1].length >= RECORD_HEADER_BYTES) {
        senderEpoch = recordEpochAt(args[1], 0);
      }
    }
    if (senderEpoch !== undefined && senderEpoch < own) {
      this.#logFenced(connection, senderEpoch, own);
      throw staleEpochError(
        own,
        senderEpoch,
        `this node is the master of epoch ${own} (promoted): a master of epoch ${senderEpoch} ` +
          `is deposed and must not acknowledge writes`,
      );
    }
    if (role.promotingEpoch !== undefined) {
      throw new CommandError("this node is being promoted to master: REPLICATE refused");
    }
    throw new CommandError(REPLICATE_ON_MASTER_MESSAGE);
  }

  /** Logs a fenced old master once per connection (its frames in flight all come back refused). */
  #logFenced(connection: ConnectionInfo, epoch: number, own: number): void {
    if (this.#fencedLogged.has(connection)) return;
    this.#fencedLogged.add(connection);
    log.warn(
      "fenced the master {master} of epoch {epoch}: this node is the master of epoch {own}",
      { event: "fenced_old_master", master: connection.peer, epoch, own },
    );
  }

  /**
   * Why this replica takes no local writes: it follows a master (one streamed to it, or its log
   * holds a master's records, or a master's epoch was announced to it, or REPLICAOF named one);
   * undefined when it never did, the spec's stand-alone replica (its troubleshooting step writes
   * to one by hand).
   */
  #followedMaster(applier: ReplicaApplier): string | undefined {
    const info = applier.getInfo();
    if (info.masterAddress !== "") return `master ${info.masterAddress} streams to it`;
    const role = this.#role;
    if (role.followedMaster !== "") return `REPLICAOF made it follow ${role.followedMaster}`;
    const lsn = info.lastAppliedLsn;
    if (lsn > 0) return `it holds its master's records up to LSN ${lsn}`;
    const seen = role.state.highestEpochSeen;
    if (seen > 0) return `a master of epoch ${seen} streamed to it`;
    return undefined;
  }

  /**
   * The spec's `REPLICATE PUT|BATCHPUT|DELETE` by hand: refused once the replica follows a
   * master (the write would exist only here, and the replica would differ from its master
   * forever while looking healthy); before that, counted durably and then applied as a local
   * write, which the first master to connect replaces with a full sync.
   */
  #localWrite(
    sub: string,
    args: Uint8Array[],
    ctx: CommandContext,
    applier: ReplicaApplier,
  ): Promise<Reply> {
    const following = this.#followedMaster(applier);
    if (following !== undefined) {
      throw new CommandError(
        `REPLICATE ${sub} refused: this replica follows a master (${following}); a write made ` +
          `here would not be in the master's history. Send writes to the master`,
        "READONLY",
      );
    }
    // Counted durably first, then applied in this turn (a pipelined read sees it): a crash in
    // between overcounts, which costs one needless full sync, never a write left unreplaced.
    this.#role.countLocalWrite();
    return applied(applier.handle(args, ctx.connection.id, ctx.connection.peer));
  }

  /** `REPLICATE DIVERGED <commonLsn> <masterEpoch>`: the master says where the logs part. */
  #diverged(args: Uint8Array[], peer: string): void {
    if (args.length !== 3) throw new CommandError("REPLICATE DIVERGED requires lsn and epoch");
    const commonLsn = asCommandError(() => parseStreamNumber(args[1], "common LSN", MAX_LSN));
    const masterEpoch = asCommandError(() => parseStreamNumber(args[2], "epoch", MAX_EPOCH));
    const info = this.#role.applier?.getInfo();
    const lastLsn = info?.lastAppliedLsn ?? 0;
    const records = Math.max(0, lastLsn - commonLsn);
    this.#discardedRecords += records;
    this.#role.noteDiverged();
    log.warn(
      "this node's log diverged from master {master}'s after LSN {commonLsn}: its {records} " +
        "records past that point (LSN {first}..{last}, epoch {epoch}) are not in the master's " +
        "history (epoch {masterEpoch}) and are discarded; a full sync replaces them",
      {
        event: "diverged",
        master: peer,
        commonLsn,
        records,
        first: commonLsn + 1,
        last: lastLsn,
        epoch: info?.epoch ?? 0,
        masterEpoch,
      },
    );
  }
}
