/**
 * Full sync on disk: a full sync stages its segments as `NNNNNNNNNNNN.log.sync` files and commits
 * them with the `FULLSYNC` marker. A crash before the marker leaves the old store (the staged files
 * are removed at open); a crash after it is finished at open ({@link settleFullSync}): never a mix
 * of the two.
 *
 * @module
 */
import { getLog } from "../log.ts";
import { fsyncDir } from "./durable_file.ts";
import {
  FULL_SYNC_MARKER_NAME,
  parseSegmentOrHintFileName,
  parseStagedSegmentFileName,
  unstagedPathOf,
} from "./file_names.ts";

const log = getLog("storage");

/**
 * At open: completes a full sync whose commit marker was written, or discards one that never
 * committed, so a crash mid full sync never leaves half-old, half-new contents.
 */
export function settleFullSync(dir: string): void {
  const markerPath = `${dir}/${FULL_SYNC_MARKER_NAME}`;
  let baseId: number | undefined;
  try {
    baseId = Number(Deno.readTextFileSync(markerPath).trim());
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for (const entry of Deno.readDirSync(dir)) {
    const stagedId = parseStagedSegmentFileName(entry.name);
    const path = `${dir}/${entry.name}`;
    if (stagedId === undefined) continue;
    if (baseId !== undefined && stagedId >= baseId) {
      Deno.renameSync(path, unstagedPathOf(path));
    } else {
      Deno.removeSync(path);
    }
  }
  if (baseId === undefined) return;
  for (const entry of Deno.readDirSync(dir)) {
    const id = parseSegmentOrHintFileName(entry.name) ?? NaN;
    if (id < baseId) Deno.removeSync(`${dir}/${entry.name}`);
  }
  fsyncDir(dir);
  Deno.removeSync(markerPath);
  fsyncDir(dir);
  log.info("completed an interrupted full sync (segments from {baseId})", { baseId });
}
