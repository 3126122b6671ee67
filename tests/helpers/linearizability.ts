/**
 * A linearizability checker for a history of reads and writes of registers (one per key), in
 * the manner of Porcupine (Wing & Gong's search with Lowe's memoization): for each key
 * separately (linearizability is compositional), find an order of the operations that respects
 * real time (an operation that returned before another was invoked comes first) and in which every
 * read returns the last value written before it. A write whose outcome is unknown (an error, a
 * lost connection) may take effect at any time after it was invoked, or never: it is given no
 * return time.
 *
 * The search keeps a list of call and return events; it tries to linearize the next pending
 * operation that is enabled, and backtracks at a return event none of whose operations could be
 * placed. A (set of linearized operations, register value) pair already explored is not explored
 * again, which keeps histories with a few concurrent clients fast.
 *
 * @module
 */

/** One operation of a client on one key, as the client saw it. */
export interface Operation {
  key: string;
  kind: "read" | "write";
  /** Written or read; `null` for absent (a delete writes `null`, a miss reads it). */
  value: string | null;
  /** When the client sent it (any monotonic clock shared by all clients, ms). */
  invokedMs: number;
  /** When its reply came; `Infinity` for a write whose outcome is unknown. */
  returnedMs: number;
}

/** A key whose operations admit no linearization, with the operations that show it. */
export interface Violation {
  key: string;
  operations: Operation[];
}

interface Event {
  op: number;
  isCall: boolean;
  timeMs: number;
  prev: Event | undefined;
  next: Event | undefined;
  /** On a call: its return event. */
  match: Event | undefined;
}

/** True when the operations of one key (all on that key) are linearizable from `initial`. */
function linearizable(ops: readonly Operation[], initial: string | null): boolean {
  const events: Event[] = [];
  ops.forEach((op, i) => {
    const call: Event = {
      op: i,
      isCall: true,
      timeMs: op.invokedMs,
      prev: undefined,
      next: undefined,
      match: undefined,
    };
    const ret: Event = {
      op: i,
      isCall: false,
      timeMs: op.returnedMs,
      prev: undefined,
      next: undefined,
      match: undefined,
    };
    call.match = ret;
    events.push(call, ret);
  });
  // Calls before returns at equal times: touching operations count as concurrent.
  events.sort((a, b) => a.timeMs - b.timeMs || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Event = {
    op: -1,
    isCall: false,
    timeMs: -Infinity,
    prev: undefined,
    next: undefined,
    match: undefined,
  };
  let last = head;
  for (const event of events) {
    event.prev = last;
    last.next = event;
    last = event;
  }
  const lift = (call: Event) => {
    for (const e of [call, call.match as Event]) {
      (e.prev as Event).next = e.next;
      if (e.next !== undefined) e.next.prev = e.prev;
    }
  };
  const unlift = (call: Event) => {
    for (const e of [call.match as Event, call]) {
      (e.prev as Event).next = e;
      if (e.next !== undefined) e.next.prev = e;
    }
  };
  const linearized = new Uint32Array(Math.ceil(ops.length / 32));
  const seen = new Set<string>();
  const stack: { call: Event; state: string | null }[] = [];
  let state = initial;
  let entry = head.next;
  // Bounded: every pass either linearizes an operation (at most once per explored state, and
  // the states are finite) or moves along the list or backtracks.
  while (head.next !== undefined) {
    if (entry === undefined) return false;
    if (entry.isCall) {
      const op = ops[entry.op];
      const enabled = op.kind === "write" || op.value === state;
      const next = op.kind === "write" ? op.value : state;
      if (enabled) {
        linearized[entry.op >>> 5] |= 1 << (entry.op & 31);
        const memo = `${linearized.join(",")}|${next}`;
        if (!seen.has(memo)) {
          seen.add(memo);
          stack.push({ call: entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[entry.op >>> 5] &= ~(1 << (entry.op & 31));
      }
      entry = entry.next;
    } else {
      const top = stack.pop();
      if (top === undefined) return false;
      state = top.state;
      linearized[top.call.op >>> 5] &= ~(1 << (top.call.op & 31));
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return true;
}

/**
 * Checks every key's operations; returns the keys that are not linearizable (empty: the history
 * is). `initial` is every register's value before the history (default: absent).
 */
export function checkLinearizable(
  history: readonly Operation[],
  initial: (key: string) => string | null = () => null,
): Violation[] {
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    const list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, [op]);
    else list.push(op);
  }
  const violations: Violation[] = [];
  for (const [key, ops] of byKey) {
    if (!linearizable(ops, initial(key))) violations.push({ key, operations: ops });
  }
  return violations;
}
