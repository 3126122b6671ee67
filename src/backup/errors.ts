/**
 * The error of a backup that could not be made (a target directory in use, a reply that does not
 * add up); the message says which and what to do.
 *
 * @module
 */

/** A backup failed; nothing is left in the target directory. */
export class BackupError extends Error {
  override name = "BackupError";
}
