/**
 * `kvstore repair`: makes a store that refuses to start because of a damaged record openable
 * again, by truncating the damaged segment at the first bad record. It says exactly what goes
 * (file, offset, bytes) before doing it, and does nothing without `apply`.
 *
 * @module
 */
import { CorruptionError } from "./errors.ts";
import { hintPathOf } from "./file_names.ts";
import { KVStore } from "./store.ts";

/** One truncation repair made or would make. */
export interface RepairAction {
  path: string;
  offset: number;
  lostBytes: number;
  reason: string;
}

/** What {@link repairStore} found. */
export interface RepairReport {
  /** Truncations, in the order found (only the first one when not applying). */
  actions: RepairAction[];
  /** The store opens cleanly (after the actions, when applied). */
  healthy: boolean;
}

const MAX_REPAIRS = 1000;

/**
 * Finds damaged records in `dir` and, when `apply` is true, truncates each damaged segment at its
 * first bad record (removing its hint file, which no longer matches), until the store opens.
 * `report(action)` is called before each truncation with what will be lost.
 */
export async function repairStore(
  dir: string,
  options: { apply: boolean; report?: (action: RepairAction) => void },
): Promise<RepairReport> {
  const actions: RepairAction[] = [];
  // Bounded: each pass truncates one file strictly shorter, or stops.
  for (let pass = 0; pass < MAX_REPAIRS; pass++) {
    try {
      const store = await KVStore.open(dir, { autoCompact: false });
      await store.close();
      return { actions, healthy: true };
    } catch (error) {
      if (!(error instanceof CorruptionError)) throw error;
      const size = Deno.statSync(error.path).size;
      const action: RepairAction = {
        path: error.path,
        offset: error.offset,
        lostBytes: size - error.offset,
        reason: error.reason,
      };
      actions.push(action);
      options.report?.(action);
      if (!options.apply) return { actions, healthy: false };
      if (error.offset < 40) {
        Deno.removeSync(error.path);
      } else {
        const file = Deno.openSync(error.path, { write: true });
        try {
          file.truncateSync(error.offset);
          file.syncDataSync();
        } finally {
          file.close();
        }
      }
      try {
        Deno.removeSync(hintPathOf(error.path));
      } catch (removeError) {
        if (!(removeError instanceof Deno.errors.NotFound)) throw removeError;
      }
    }
  }
  return { actions, healthy: false };
}
