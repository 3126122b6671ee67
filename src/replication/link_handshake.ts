/**
 * A link's handshake with its replica, step by step: the token proof (`CHALLENGE`/`PROVE`), the
 * record format check (`REPLICATE FORMAT`), `HELLO`, then the codec offer and the key filter in
 * one round trip. It gathers the facts the replica's core decides on ({@link HandshakeFacts});
 * the link hands them to `ReplicaNode.onHandshake` and carries out the decision.
 *
 * @module
 */
import { challengeProof, isHex64, newNonce, proofMatches } from "../protocol/challenge.ts";
import { RespErrorReply, type RespValue } from "../protocol/resp.ts";
import { BatchPacker, type Codec, isCodec } from "./compression.ts";
import { KeyFilter } from "./key_filter.ts";
import type { LinkSession } from "./link_context.ts";
import { LinkError } from "./link_connection.ts";
import type { HandshakeFacts } from "./replica_node.ts";
import { recordAt } from "./source_records.ts";
import {
  compressRequest,
  describeReply,
  encodeRequest,
  filterRequest,
  formatRequest,
  helloRequest,
  parseHelloReply,
  RECORD_FORMAT,
} from "./stream_protocol.ts";

/** How the replica answered the token proof. */
export type ProofOutcome = "proved" | "no_token";

/**
 * Runs the handshake up to the decision (the token proof first when `token` is set) and returns
 * the facts for `ReplicaNode.onHandshake`. `onNoToken` is called when the replica has no tokens
 * (it is tolerated; the link warns once).
 */
export async function handshake(
  session: LinkSession,
  token: string | undefined,
  onNoToken: () => void,
): Promise<HandshakeFacts> {
  const { node, ctx, wire } = session;
  if (token !== undefined && await proveToken(session, token) === "no_token") onNoToken();
  await checkFormat(session);
  const hello = await wire.request(
    helloRequest(
      ctx.epoch(),
      node.durableLsn,
      node.policy.healthCheckIntervalMs,
      node.policy.timeoutMs,
      ctx.masterAddress?.(),
    ),
    "hello",
  );
  const { lastLsn, lastEpoch, lastCrc, localWrites } = parseHelloReply(hello);
  const filterChanged = await negotiate(session);
  const master = lastLsn > node.durableLsn ? undefined : await recordAt(ctx.source, lastLsn, node);
  wire.throwIfFailed();
  return {
    replicaLsn: lastLsn,
    replicaEpoch: lastEpoch,
    replicaCrc: lastCrc,
    masterEpochAtReplicaLsn: master?.epoch,
    masterCrcAtReplicaLsn: master?.crc ?? 0,
    replicaLocalWrites: localWrites,
    filterChanged,
  };
}

/**
 * Asks which record format the replica reads (`REPLICATE FORMAT`): one from before format 2
 * could not read this master's expiring, MULTI or FLUSH records, so it is refused with what to
 * do (the link retries with backoff, and streams once the replica is upgraded).
 */
async function checkFormat({ node, wire }: LinkSession): Promise<void> {
  const reply = await wire.request(formatRequest(), "format");
  if (typeof reply === "number" && reply >= RECORD_FORMAT) return;
  throw new LinkError(
    `replica ${node.address} runs an older kvstore: it reads record format ` +
      `${typeof reply === "number" ? reply : 1}, this master writes format ${RECORD_FORMAT} ` +
      `(expiry, MULTI and FLUSH records; it answered REPLICATE FORMAT with ` +
      `${describeReply(reply)}). Upgrade the replica first: a newer replica follows an older ` +
      `master, not the other way round`,
  );
}

/**
 * Proves the replication token and has the replica prove it (`CHALLENGE`, `PROVE`; see
 * `src/protocol/challenge.ts`): the token never crosses the wire, and nothing else is sent to a
 * replica that cannot prove it. A replica without tokens is tolerated ("no_token").
 */
async function proveToken({ wire }: LinkSession, token: string): Promise<ProofOutcome> {
  const dialerNonce = newNonce();
  // A refusal fails the request (see LinkConnection); the only error that comes back is "no
  // tokens".
  const challenge = await wire.request(encodeRequest(["CHALLENGE", dialerNonce]), "auth");
  if (challenge instanceof RespErrorReply) return "no_token";
  const nodeNonce = typeof challenge === "string" ? challenge : "";
  if (!isHex64(nodeNonce)) {
    throw new LinkError(`CHALLENGE: ${describeReply(challenge)} instead of a nonce`);
  }
  const proof = challengeProof(token, "dialer", dialerNonce, nodeNonce);
  const reply = await wire.request(encodeRequest(["PROVE", proof]), "auth");
  const expected = challengeProof(token, "node", dialerNonce, nodeNonce);
  if (typeof reply !== "string" || !proofMatches(reply, expected)) {
    throw new LinkError(
      "replica did not prove it holds the replication token (a different token, or not " +
        "the node you meant: check the address); nothing sent to it",
    );
  }
  return "proved";
}

/**
 * After HELLO, in one round trip: offers this node's codec (`REPLICATE COMPRESS`, when
 * compression is on) and tells the replica its key filter (`REPLICATE FILTER`, none for a
 * replica that receives every key). Resolves to why the replica's data does not match its
 * filter (it then needs a full sync), or undefined when it does.
 */
async function negotiate(session: LinkSession): Promise<string | undefined> {
  const { node, ctx, wire, frames } = session;
  frames.packer = undefined;
  const setting = ctx.compression?.setting ?? "off";
  if (!node.keyFilterGiven) node.keyFilter = KeyFilter.of(ctx.heldKeyFilter?.());
  const prefixes = node.keyFilter?.prefixes ?? [];
  const compressed = setting === "off"
    ? undefined
    : wire.request(compressRequest(setting), "compress");
  const filtered = wire.request(filterRequest(prefixes), "filter");
  filtered.catch(() => {}); // a failed connection rejects both; the first await throws it
  if (setting === "off" || compressed === undefined) node.compression = "off";
  else onCompressReply(session, setting, await compressed);
  const reply = await filtered;
  if (reply === "same") return undefined;
  if (reply === "changed") {
    return prefixes.length === 0
      ? "the replica held only some keys (a key filter) and now receives every key"
      : `the replica's key filter is now ${node.keyFilter}: it must hold exactly those keys`;
  }
  if (prefixes.length === 0) return undefined; // a replica from before key filters: it has all
  throw new LinkError(
    `replica cannot take a key filter (${describeReply(reply)}): it is older than selective ` +
      `replication; upgrade it, or list it without [prefixes]`,
  );
}

/** The replica's answer to the codec offered (`setting`): the session's codec, or none. */
function onCompressReply(
  { node, ctx, frames }: LinkSession,
  setting: Codec,
  reply: RespValue,
): void {
  const accepted = typeof reply === "string" ? reply : "";
  const minBytes = ctx.compression?.minBytes ?? Infinity;
  frames.packer = isCodec(accepted) && accepted === setting
    ? new BatchPacker(accepted, minBytes)
    : undefined;
  node.compression = frames.packer?.codec ??
    (reply instanceof RespErrorReply ? "unsupported by the replica" : "refused by the replica");
  if (frames.packer === undefined) {
    ctx.log.info(
      "replica {replica} does not take {codec} frames ({why}): its stream is uncompressed",
      { replica: node.address, codec: setting, why: describeReply(reply) },
    );
  }
}
