/**
 * The coordinator plugged into the server: with `--coordinator etcd` it starts a
 * {@link Coordinator} on the node's role (the replication extension must come first: it owns the
 * role), adds `SWITCHOVER <name> [timeout-ms]`, and exports its state as metrics. Without a
 * coordinator it adds nothing.
 *
 * @module
 */
import { Gauge, type Registry } from "../metrics/registry.ts";
import { nodeRoleOf } from "../replication/node_role.ts";
import { CommandError, type ServerExtension, type ServerHooks } from "../server/hooks.ts";
import { Coordinator, SwitchoverError } from "./coordinator.ts";

const decoder = new TextDecoder();

/** Longest `SWITCHOVER` may wait for its target to catch up. */
const MAX_SWITCHOVER_TIMEOUT_MS = 600_000;

const coordinators = new WeakMap<object, Coordinator>();

/** The coordinator of a node started with {@link coordinatorExtension}, if any. */
export function coordinatorOf(node: object): Coordinator | undefined {
  return coordinators.get(node);
}

/** The coordinator extension (metrics in `registry` when given). */
export function coordinatorExtension(registry?: Registry): ServerExtension {
  return (node): ServerHooks => {
    if (node.config.COORDINATOR === "none") return {};
    const role = nodeRoleOf(node);
    if (role === undefined) throw new Error("--coordinator etcd needs the replication extension");
    const coordinator = new Coordinator(node, role);
    coordinators.set(node, coordinator);
    if (registry !== undefined) registerCoordinatorMetrics(registry, coordinator);
    // The server sets its address right after the extensions: the coordinator starts then.
    setTimeout(() => coordinator.start(), 0);
    return {
      commands: {
        SWITCHOVER: {
          minArgs: 1,
          maxArgs: 2,
          admin: true,
          handler: async (args) => {
            const target = decoder.decode(args[0]);
            const timeoutText = args.length > 1 ? decoder.decode(args[1]) : undefined;
            const timeoutMs = timeoutText === undefined
              ? node.config.REPLICATION_TIMEOUT * 1000
              : /^\d{1,9}$/.test(timeoutText)
              ? Number(timeoutText)
              : NaN;
            if (!(timeoutMs >= 1 && timeoutMs <= MAX_SWITCHOVER_TIMEOUT_MS)) {
              throw new CommandError(
                `SWITCHOVER timeout must be whole milliseconds from 1 to ${MAX_SWITCHOVER_TIMEOUT_MS}`,
              );
            }
            try {
              const { epoch, lsn } = await coordinator.switchover(target, timeoutMs);
              return { type: "status", text: `SWITCHED to ${target} epoch ${epoch} lsn ${lsn}` };
            } catch (error) {
              if (error instanceof SwitchoverError) throw new CommandError(error.message);
              throw error;
            }
          },
        },
      },
      stopping: () => coordinator.stopping(),
      close: () => coordinator.stop(),
    };
  };
}

function registerCoordinatorMetrics(registry: Registry, coordinator: Coordinator): void {
  const one = (name: string, help: string, value: () => number, type?: "counter") =>
    registry.add(new Gauge(name, help, [], () => [{ value: value() }], type));
  one(
    "kvstore_coordinator_is_leader",
    "1 when this node holds the leader key in etcd",
    () => coordinator.leader?.name === coordinator.name && coordinator.leaseLeftMs() > 0 ? 1 : 0,
  );
  one(
    "kvstore_coordinator_lease_left_seconds",
    "How long this node's lease in etcd can still be trusted",
    () => coordinator.leaseLeftMs() / 1000,
  );
  one(
    "kvstore_coordinator_leader_epoch",
    "The epoch of the leader key as last read",
    () => coordinator.leader?.epoch ?? 0,
  );
  one(
    "kvstore_coordinator_members",
    "Members registered in etcd (lease alive)",
    () => coordinator.members.length,
  );
  one(
    "kvstore_coordinator_etcd_errors_total",
    "etcd requests that failed on every endpoint",
    () => coordinator.etcdErrors,
    "counter",
  );
}
