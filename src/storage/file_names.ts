/**
 * The names of the files in a data directory, and what each kind of name means: the one place
 * that knows them.
 *
 * ```
 * LOCK                        held (flock) by the process that has the store open
 * NNNNNNNNNNNN.log            a segment (id in 12 decimal digits); the highest id is the active one
 * NNNNNNNNNNNN.hint           the index entries of the sealed segment of the same id (hint.ts)
 * NNNNNNNNNNNN.log.sync       a segment staged by a full sync, not yet part of the log
 * FULLSYNC                    a full sync committed: staged segments from the id it holds replace
 *                             every older segment (recovery finishes the swap)
 * *.tmp                       a file being written before its rename (hints, compaction output,
 *                             the FULLSYNC marker); never valid under that name: removed at open
 * ```
 *
 * Segment ids ascend in log order; compaction writes a run's output under the run's first id.
 * Other layers keep files of their own beside these: `NODE_STATE.json` (replication's node state),
 * `RUNNING.json` (a running server, `cli/lock_holder.ts`), `BACKUP.json` (in a backup).
 *
 * @module
 */

/** The directory lock file. */
export const LOCK_FILE_NAME = "LOCK";
/** The marker whose presence commits a full sync (it holds the first staged segment id). */
export const FULL_SYNC_MARKER_NAME = "FULLSYNC";

const SEGMENT_NAME = /^(\d{12})\.log$/;
const STAGED_SEGMENT_NAME = /^(\d{12})\.log\.sync$/;
const SEGMENT_OR_HINT_NAME = /^(\d{12})\.(log|hint)$/;
const TEMPORARY_SUFFIX = ".tmp";
const STAGED_SUFFIX = ".sync";

/** File name of segment `id`. */
export function segmentFileName(id: number): string {
  return `${String(id).padStart(12, "0")}.log`;
}

/** Path of segment `id` in `dir`. */
export function segmentPath(dir: string, id: number): string {
  return `${dir}/${segmentFileName(id)}`;
}

/** The id of a segment file name, or undefined when the name is not one. */
export function parseSegmentFileName(name: string): number | undefined {
  const match = SEGMENT_NAME.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** The id of a full sync's staged segment file name, or undefined when the name is not one. */
export function parseStagedSegmentFileName(name: string): number | undefined {
  const match = STAGED_SEGMENT_NAME.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** The segment id of a segment or hint file name, or undefined when the name is neither. */
export function parseSegmentOrHintFileName(name: string): number | undefined {
  const match = SEGMENT_OR_HINT_NAME.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** Path of the hint file of the segment at `segmentPath`. */
export function hintPathOf(segmentPath: string): string {
  return segmentPath.replace(/\.log$/, ".hint");
}

/** Path under which a full sync stages the segment that will be at `segmentPath`. */
export function stagedPathOf(segmentPath: string): string {
  return `${segmentPath}${STAGED_SUFFIX}`;
}

/** The segment path a full sync's staged file at `stagedPath` becomes. */
export function unstagedPathOf(stagedPath: string): string {
  return stagedPath.slice(0, -STAGED_SUFFIX.length);
}

/** Path a new version of `path` is written under before its rename (`kind` tells writers apart). */
export function temporaryPathOf(path: string, kind = ""): string {
  return kind === "" ? `${path}${TEMPORARY_SUFFIX}` : `${path}.${kind}${TEMPORARY_SUFFIX}`;
}

/** Whether `name` is a file left half-written by a crash (see {@link temporaryPathOf}). */
export function isTemporaryFileName(name: string): boolean {
  return name.endsWith(TEMPORARY_SUFFIX);
}
