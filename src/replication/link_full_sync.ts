/**
 * A link's full sync of its replica: a snapshot of the master's data sent in chunks
 * (`REPLICATE SNAPSHOT BEGIN`, `CHUNK`/`CHUNKZ` within the snapshot window, `END`), and before it,
 * for a replica whose log left this master's history, the divergence report (`REPLICATE
 * DIVERGED` at the last LSN both share). The replica's core decided the full sync; this carries
 * it out on the session's connection.
 *
 * @module
 */
import { findCommonLsn } from "./divergence.ts";
import type { LinkSession } from "./link_context.ts";
import { LinkError } from "./link_connection.ts";
import { recordAt } from "./source_records.ts";
import {
  encodeRequest,
  expectInteger,
  PairChunkWriter,
  snapshotBeginRequest,
  snapshotEndRequest,
} from "./stream_protocol.ts";
import { SyncProgress } from "./sync_progress.ts";

/**
 * Sends the replica a snapshot of the master's data, filtered by its key filter, and tells its
 * core the full sync is done at the snapshot's LSN (streaming continues from the log there).
 */
export async function sendFullSync(session: LinkSession): Promise<void> {
  const { node, ctx, wire } = session;
  const snapshot = await ctx.source.snapshot();
  try {
    const progress = new SyncProgress(ctx.nowMs(), snapshot.keys ?? 0);
    await wire.request(
      snapshotBeginRequest(snapshot.lsn, ctx.epoch(), progress.totalKeys, snapshot.bytes ?? 0),
      "snapshot",
    );
    const writer = new PairChunkWriter(ctx.snapshotChunkBytes);
    const filter = node.keyFilter;
    for await (const [key, value, expiresAtMs = 0] of snapshot.entries) {
      wire.throwIfFailed();
      if (filter !== undefined && !filter.matches(key)) continue;
      if (writer.wouldOverflow(key, value, expiresAtMs)) {
        await sendChunk(session, writer, progress);
      }
      writer.add(key, value, expiresAtMs);
    }
    await sendChunk(session, writer, progress);
    const end = await wire.request(snapshotEndRequest(snapshot.lsn), "snapshot");
    const endLsn = expectInteger(end, "SNAPSHOT END");
    if (endLsn !== snapshot.lsn) {
      throw new LinkError(`replica ended the full sync at LSN ${endLsn}, not ${snapshot.lsn}`);
    }
    node.onFullSyncDone(snapshot.lsn, ctx.nowMs());
    ctx.log.info(
      "full sync of replica {replica} done: {records} records, {bytes} bytes at LSN {lsn} in " +
        "{seconds} s ({mbPerSecond} MB/s); catching up from the log",
      { replica: node.address, lsn: snapshot.lsn, ...progress.done(ctx.nowMs()) },
    );
  } finally {
    snapshot.release();
  }
}

/** Sends the pairs `writer` holds (if any) as one chunk, once the snapshot window has room. */
async function sendChunk(
  { node, ctx, wire, wakeup, frames }: LinkSession,
  writer: PairChunkWriter,
  progress: SyncProgress,
): Promise<void> {
  if (writer.pairs === 0) return;
  const pairs = writer.pairs;
  const chunk = writer.take();
  while (!node.snapshotWindowOpen(pairs)) {
    wire.throwIfFailed();
    await wakeup.wait(); // replies are due: the watchdog bounds the wait
  }
  await wire.send(frames.chunkFrame(chunk), "chunk", pairs);
  if (progress.sent(pairs, chunk.length, ctx.nowMs())) {
    ctx.log.info(
      "full sync of replica {replica}: {records} of {totalRecords} records, {bytes} bytes " +
        "({percent}%)",
      { replica: node.address, ...progress.figures() },
    );
  }
}

/**
 * The replica's log left this master's history (an old master back as a replica): finds the
 * last LSN both share, logs how many of the replica's records lie past it, and tells the
 * replica (`REPLICATE DIVERGED`), which logs and counts them before the full sync replaces them.
 */
export async function reportDivergence(
  { node, ctx, wire }: LinkSession,
  replicaLsn: number,
  replicaEpoch: number,
): Promise<void> {
  const commonLsn = await findCommonLsn(
    {
      replicaLsn,
      replicaEpoch,
      oldestCompleteLsn: ctx.source.oldestCompleteLsn ?? 0,
      durableLsn: node.durableLsn,
    },
    async (lsn) => (await recordAt(ctx.source, lsn, node))?.epoch,
  );
  if (commonLsn === undefined) return;
  const records = replicaLsn - commonLsn;
  node.discardedRecords += records;
  ctx.log.warn(
    "replica {replica} diverged after LSN {commonLsn}: its {records} records past that point " +
      "(epoch {replicaEpoch}) are not in this master's history (epoch {epoch}); they are " +
      "discarded by a full sync",
    { replica: node.address, commonLsn, records, replicaEpoch, epoch: ctx.epoch() },
  );
  await wire.request(
    encodeRequest(["REPLICATE", "DIVERGED", String(commonLsn), String(ctx.epoch())]),
    "diverged",
  );
}
