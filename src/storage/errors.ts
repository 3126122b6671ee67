/**
 * Typed errors of the storage engine. Each message names the bad value and the limit or file it
 * concerns, so an operator can act on it without reading code.
 *
 * @module
 */

/** Base class of every storage error. */
export class StorageError extends Error {
  override name = "StorageError";
}

/** A key longer than `MAX_KEY_BYTES`. */
export class KeyTooLargeError extends StorageError {
  override name = "KeyTooLargeError";
  constructor(readonly sizeBytes: number, readonly limitBytes: number) {
    super(`key of ${sizeBytes} bytes is larger than MAX_KEY_BYTES ${limitBytes}`);
  }
}

/** A value longer than `MAX_VALUE_BYTES`. */
export class ValueTooLargeError extends StorageError {
  override name = "ValueTooLargeError";
  constructor(readonly sizeBytes: number, readonly limitBytes: number) {
    super(`value of ${sizeBytes} bytes is larger than MAX_VALUE_BYTES ${limitBytes}`);
  }
}

/** A batch whose record would exceed the largest record the log can hold. */
export class BatchTooLargeError extends StorageError {
  override name = "BatchTooLargeError";
  constructor(readonly sizeBytes: number, readonly limitBytes: number) {
    super(`batch of ${sizeBytes} encoded bytes is larger than the record limit ${limitBytes}`);
  }
}

/** Another process (or another open store in this process) holds the data directory. */
export class StoreLockedError extends StorageError {
  override name = "StoreLockedError";
  constructor(readonly dir: string) {
    super(
      `data directory ${dir} is locked by another kvstore process (or another open store in ` +
        `this one); stop it or choose another --data-dir`,
    );
  }
}

/** The store was closed; no operation is possible any more. */
export class StoreClosedError extends StorageError {
  override name = "StoreClosedError";
  constructor(readonly dir: string) {
    super(`store ${dir} is closed`);
  }
}

/**
 * A write to the log or its fsync failed (for example ENOSPC). Nothing written after the failure
 * is acknowledged, and the store refuses writes until it is reopened (like Redis's MISCONF).
 */
export class StoreFailedError extends StorageError {
  override name = "StoreFailedError";
  constructor(readonly dir: string, options?: ErrorOptions) {
    super(
      `store ${dir} refuses writes: writing its log failed (${
        String((options?.cause as Error | undefined)?.message ?? options?.cause)
      }); free the disk or fix the cause, then restart the node`,
      options,
    );
  }
}

/** A record in the middle of the log (not a torn tail) is damaged. */
export class CorruptionError extends StorageError {
  override name = "CorruptionError";
  constructor(readonly path: string, readonly offset: number, readonly reason: string) {
    super(
      `corrupt record in ${path} at byte offset ${offset}: ${reason}; the store refuses to ` +
        `start rather than lose data silently (kvstore repair --data-dir <dir> truncates ` +
        `there, after listing what it would remove)`,
    );
  }
}

/** Records after the requested LSN are no longer all in the log (compaction dropped some). */
export class LogGapError extends StorageError {
  override name = "LogGapError";
  constructor(readonly afterLsn: number, readonly oldestCompleteLsn: number) {
    super(
      `the log no longer holds every record after LSN ${afterLsn}: compaction or a full sync ` +
        `kept it complete only after LSN ${oldestCompleteLsn}; a full sync is needed`,
    );
  }
}

/** Records handed to `appendReplicated` that are damaged or out of order. */
export class ReplicationStreamError extends StorageError {
  override name = "ReplicationStreamError";
}

/** A range holds more key and value bytes than the caller's budget. */
export class RangeTooLargeError extends StorageError {
  override name = "RangeTooLargeError";
  constructor(readonly maxBytes: number) {
    super(`the range holds more than ${maxBytes} bytes of keys and values`);
  }
}
