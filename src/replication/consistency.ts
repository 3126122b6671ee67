/**
 * Per-request consistency, for clients that choose among nodes (`KVClient({ nodes })`):
 *
 * ```
 * WITH [LSN] [MINLSN <lsn>] [CONCERN <replicas>|majority <timeoutMs>] <command> <args...>
 * ```
 *
 * runs one data command (`PUT`/`SET`, `DELETE`/`DEL`, `BATCHPUT`/`MSET`, `READ`/`GET`, `MGET`,
 * `EXISTS`, `READRANGE`, `DBSIZE`) with options, RESP framing only:
 *
 * - `LSN`: the reply carries the node's LSN after the command, `*2 <reply> :<lsn>`: for a write
 *   its own LSN, for a read the LSN of the state it read (on a replica: what it applied). An
 *   error reply stays a plain error. The options are per request, so plain Redis clients and the
 *   text protocol see no change, and a client pays for them only on the requests that use them.
 * - `MINLSN <n>` (reads): served only once this node's log reaches LSN n, waiting up to
 *   `MIN_LSN_WAIT_MS`; then `-TRYAGAIN ...` (retry later, or elsewhere: the master has it). A
 *   session passes the highest LSN it wrote or read, so it never reads older data than it saw.
 * - `CONCERN <k>|majority <timeoutMs>` (writes): the write is OK only once k replicas (majority:
 *   of the nodes with the master, `floor((replicas + 1) / 2)` replicas) have it, whatever the
 *   node's replication mode (in sync mode both must hold). When they do not within `timeoutMs`:
 *   `-WRITECONCERN <acked> <required> <lsn> ...`; the write stays applied on the master and
 *   reaches the replicas when they catch up, as the sync-mode error says. A concern that can
 *   never be met (more replicas than the master has) is refused before the write is applied.
 *
 * And Redis's `WAIT numreplicas timeout`: blocks until `numreplicas` replicas acknowledged every
 * write made on this connection (or `timeout` ms passed; 0 waits for ever) and answers how many
 * did. Both waits are the replicator's {@link Replicator.waitForAcks}.
 *
 * @module
 */
import type { Reply } from "../protocol/mod.ts";
import { ReplyWriter } from "../protocol/mod.ts";
import { parseClamped } from "../redis/arguments.ts";
import { BUILT_IN_COMMANDS, READ_ONLY_MESSAGE } from "../server/commands.ts";
import {
  type CommandContext,
  CommandError,
  type CommandSpec,
  type ServerNode,
} from "../server/hooks.ts";
import type { LsnWaiters } from "./lsn_waiters.ts";
import { upper } from "./replica_applier.ts";
import type { NodeRole } from "./node_role.ts";

/** The data commands `WITH` runs, by upper-case name. */
const DATA_COMMANDS: ReadonlyMap<string, CommandSpec> = new Map(
  [
    "PUT",
    "SET",
    "DELETE",
    "DEL",
    "BATCHPUT",
    "MSET",
    "READ",
    "GET",
    "MGET",
    "EXISTS",
    "READRANGE",
    "DBSIZE",
  ].map((name) => {
    const spec = BUILT_IN_COMMANDS.get(name);
    if (spec === undefined) throw new Error(`no built-in command ${name}`);
    return [name, spec];
  }),
);

/** Longest write concern or WAIT timeout, in ms (a day): a bound on a number, not a setting. */
const MAX_TIMEOUT_MS = 86_400_000;

/** What `WITH` and `WAIT` need of the replication extension. */
export interface ConsistencyNode {
  readonly node: ServerNode;
  /** The node's role: its replicator (a master's), whether it was deposed, whether a replica. */
  readonly role: Pick<NodeRole, "replica" | "replicator" | "deposed">;
  /** Reads waiting for the log to reach an LSN. */
  readonly lsnWaiters: LsnWaiters;
}

/** A write concern as `WITH CONCERN` gives it. */
interface Concern {
  replicas: number | "majority";
  timeoutMs: number;
}

const decoder = new TextDecoder();

function wholeNumber(bytes: Uint8Array, what: string, max: number): number {
  const text = decoder.decode(bytes);
  const value = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!(value <= max)) {
    throw new CommandError(`${what} "${text.slice(0, 40)}" is not a whole number from 0 to ${max}`);
  }
  return value;
}

/** Adds the LSN to a reply: `[reply, lsn]`; an error stays as it is. */
function withLsn(reply: Reply, lsn: number): Reply {
  if (reply.type === "error") return reply;
  if (reply.type === "raw" && reply.bytes[0] === 0x2d) return reply;
  return { type: "array", items: [reply, { type: "integer", value: lsn }] };
}

/** The options of one `WITH` request and the command it runs. */
interface WithRequest {
  lsn: boolean;
  minLsn: number;
  concern: Concern | undefined;
  name: string;
  spec: CommandSpec;
  args: Uint8Array[];
}

function parseWith(args: Uint8Array[]): WithRequest {
  let lsn = false;
  let minLsn = 0;
  let concern: Concern | undefined;
  let i = 0;
  for (; i < args.length; i++) {
    const word = upper(args[i]);
    if (word === "LSN") {
      lsn = true;
    } else if (word === "MINLSN") {
      if (i + 1 >= args.length) throw new CommandError("WITH MINLSN needs an LSN");
      minLsn = wholeNumber(args[++i], "MINLSN", Number.MAX_SAFE_INTEGER);
    } else if (word === "CONCERN") {
      if (i + 2 >= args.length) {
        throw new CommandError("WITH CONCERN needs <replicas>|majority and <timeoutMs>");
      }
      const replicas = upper(args[i + 1]) === "MAJORITY"
        ? "majority"
        : wholeNumber(args[i + 1], "CONCERN replicas", 1000);
      concern = {
        replicas,
        timeoutMs: wholeNumber(args[i + 2], "CONCERN timeout", MAX_TIMEOUT_MS),
      };
      if (concern.timeoutMs === 0) throw new CommandError("CONCERN timeout must be at least 1 ms");
      i += 2;
    } else {
      break;
    }
  }
  if (i >= args.length) throw new CommandError("WITH needs a command after its options");
  const name = upper(args[i]);
  const spec = DATA_COMMANDS.get(name);
  if (spec === undefined) {
    throw new CommandError(
      `WITH runs one of ${[...DATA_COMMANDS.keys()].join(", ")}; ` +
        `"${decoder.decode(args[i].subarray(0, 40))}" is not one of them`,
    );
  }
  const rest = args.slice(i + 1);
  if (rest.length < spec.minArgs || rest.length > spec.maxArgs) {
    throw new CommandError(`wrong number of arguments for '${name}'`);
  }
  if (spec.write && minLsn > 0) throw new CommandError("WITH MINLSN applies to reads only");
  if (!spec.write && concern !== undefined) {
    throw new CommandError("WITH CONCERN applies to writes only");
  }
  return { lsn, minLsn, concern, name, spec, args: rest };
}

/** The replicas a concern needs now, or an error when it can never be met. */
function neededReplicas(source: ConsistencyNode, concern: Concern): number {
  const replicator = source.role.replicator;
  const listed = replicator?.replicaManager.replicas.length ?? 0;
  if (concern.replicas === "majority") return replicator?.majorityReplicas() ?? 0;
  if (concern.replicas > listed) {
    throw new CommandError(
      `write concern of ${concern.replicas} replicas cannot be met: this master has ${listed}; ` +
        `nothing was written`,
    );
  }
  return concern.replicas;
}

/** The node's own wait for `lsn` and the concern's, as `replicated` answers. */
function concerned(
  source: ConsistencyNode,
  base: Promise<string | undefined> | undefined,
  lsn: number,
  needed: number,
  timeoutMs: number,
  owner: object,
): Promise<string | undefined> {
  const replicator = source.role.replicator;
  const acks = replicator === undefined
    ? Promise.resolve(0)
    : replicator.waitForAcks(lsn, needed, timeoutMs, owner);
  return Promise.all([base, acks]).then(([baseError, acked]) => {
    if (acked < needed) {
      throw new CommandError(
        `${acked} ${needed} ${lsn} write applied on the master (LSN ${lsn}) but on only ` +
          `${acked} of the ${needed} replicas its write concern asked for within ${timeoutMs} ` +
          `ms; it is not acknowledged as asked: it stays applied here and reaches the replicas ` +
          `when they catch up (unless a replica without it is promoted first)`,
        "WRITECONCERN",
      );
    }
    return baseError;
  });
}

/**
 * Runs the command now; with `lsn`, answers `[reply, lsn]`: the command writes into a writer
 * of its own (it may go on in steps, during which other connections run), and its reply is
 * copied into `out` between the array header and the LSN.
 */
function run(
  node: ServerNode,
  request: WithRequest,
  out: ReplyWriter,
  ctx: CommandContext,
): void | Promise<Reply> {
  const { spec, args } = request;
  if (!request.lsn) return spec.handler(args, out, ctx);
  const own = new ReplyWriter(256);
  own.resp = true;
  let steps: Promise<void> | undefined;
  const context: CommandContext = { ...ctx, inSteps: (work) => (steps = work) };
  const later = spec.handler(args, own, context);
  if (later !== undefined) {
    const lsn = node.store.lastLsn;
    return later.then((reply) => withLsn(reply, lsn));
  }
  const finish = () => {
    const bytes = own.bytes;
    const error = bytes[0] === 0x2d;
    if (!error) out.arrayHeader(2);
    out.raw(bytes);
    if (!error) out.integer(node.store.lastLsn);
  };
  if (steps === undefined) finish();
  else ctx.inSteps(steps.then(finish));
}

/** A read that must wait until the log reaches its MINLSN: run later, copied arguments. */
async function runLater(
  source: ConsistencyNode,
  request: WithRequest,
  ctx: CommandContext,
): Promise<Reply> {
  const { node } = source;
  const bound = node.config.MIN_LSN_WAIT_MS;
  const args = request.args.map((arg) => arg.slice());
  // The context's framing changes with the next request, and this request's reply is a late
  // one by now: keep this framing, and take what the command does later here.
  let wroteLsn = 0;
  let steps: Promise<void> | undefined;
  const later: CommandContext = {
    ...ctx,
    wrote: (lsn: number) => {
      if (lsn > wroteLsn) wroteLsn = lsn;
    },
    inSteps: (work) => (steps = work),
    stepDone: () => true,
  };
  const reached = await source.lsnWaiters.wait(request.minLsn, bound, ctx.connection);
  if (!reached) {
    return {
      type: "error",
      code: "TRYAGAIN",
      message: `this node has applied LSN ${node.store.lastLsn}, not yet LSN ` +
        `${request.minLsn} that this read asked for (waited MIN_LSN_WAIT_MS ${bound} ms); ` +
        `retry, here or on a node that is further along (the master has it)`,
    };
  }
  const writer = new ReplyWriter(256);
  writer.resp = true;
  const pending = request.spec.handler(args, writer, later);
  let reply: Reply;
  if (pending !== undefined) {
    reply = await pending;
  } else {
    if (steps !== undefined) await steps;
    reply = { type: "raw", bytes: writer.bytes.slice() };
  }
  // A read answered "once durable" (the commit point) asks for it through `wrote`.
  if (wroteLsn > 0) await node.store.whenDurable(wroteLsn);
  return request.lsn ? withLsn(reply, node.store.lastLsn) : reply;
}

/** `WITH ... <command>`: checks the options, then runs the command now or at its MINLSN. */
function withCommand(source: ConsistencyNode): CommandSpec {
  return {
    minArgs: 1,
    maxArgs: Infinity,
    handler: (args, out, ctx) => {
      if (ctx.framing !== "resp") {
        throw new CommandError("WITH needs RESP framing (it is for client libraries)");
      }
      const request = parseWith(args);
      let context = ctx;
      if (request.spec.write) {
        if (source.role.replica) throw new CommandError(READ_ONLY_MESSAGE, "READONLY");
        const deposed = source.role.deposed;
        if (deposed !== undefined) {
          throw new CommandError(
            `this node was deposed (${deposed}); send writes to the new master`,
            "READONLY",
          );
        }
        const concern = request.concern;
        if (concern !== undefined) {
          const needed = neededReplicas(source, concern);
          if (needed > 0) {
            context = {
              ...ctx,
              replicated: (lsn: number) =>
                concerned(
                  source,
                  ctx.replicated(lsn),
                  lsn,
                  needed,
                  concern.timeoutMs,
                  ctx.connection,
                ),
            };
          }
        }
      }
      if (request.minLsn > source.node.store.lastLsn) return runLater(source, request, ctx);
      return run(source.node, request, out, context);
    },
  };
}

/** The longest delay a timer takes (`setTimeout` fires at once past it). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Redis's `WAIT numreplicas timeout`. */
function waitCommand(source: ConsistencyNode): CommandSpec {
  return {
    minArgs: 2,
    maxArgs: 2,
    handler: (args, out, ctx) => {
      if (source.role.replica) {
        throw new CommandError(
          "WAIT cannot be used with replica instances. A kvstore replica takes no client " +
            "writes: send the writes and WAIT to the master",
        );
      }
      // Any 64-bit count and timeout, as Redis takes: no node has 2^53 replicas, and a timeout
      // a timer cannot hold (past 2^31 - 1 ms, 24.8 days) waits for ever, as 0 does.
      const needed = parseClamped(args[0], 0, Number.MAX_SAFE_INTEGER);
      if (needed === undefined) throw new CommandError("value is not an integer or out of range");
      const given = parseClamped(args[1], -1, Number.MAX_SAFE_INTEGER);
      if (given === undefined) throw new CommandError("timeout is not an integer or out of range");
      if (given < 0) throw new CommandError("timeout is negative");
      const timeoutMs = given > MAX_TIMER_MS ? 0 : given;
      const lsn = ctx.connection.lastWriteLsn;
      const replicator = source.role.replicator;
      if (replicator === undefined) {
        if (needed <= 0) {
          out.integer(0);
          return;
        }
        // No replicas: Redis waits out the timeout and answers 0 (0 waits for ever).
        return new Promise<Reply>((resolve) => {
          if (timeoutMs > 0) setTimeout(() => resolve({ type: "integer", value: 0 }), timeoutMs);
        });
      }
      return replicator.waitForAcks(lsn, needed, timeoutMs, ctx.connection).then((
        count,
      ): Reply => ({
        type: "integer",
        value: count,
      }));
    },
  };
}

/** The `WITH` and `WAIT` commands of a node. */
export function consistencyCommands(source: ConsistencyNode): Record<string, CommandSpec> {
  return { WITH: withCommand(source), WAIT: waitCommand(source) };
}
