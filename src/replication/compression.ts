/**
 * Compression of the replication stream: which codecs a node speaks, how a batch of records (or
 * a snapshot chunk) is packed, and the bounds an unpacked batch must keep.
 *
 * The master offers its codec after HELLO (`REPLICATE COMPRESS <codec>`); a replica that speaks
 * it and has compression on answers with its name, anything else (`none`, or an older replica's
 * "unknown subcommand" error) keeps the stream uncompressed. Only a batch of at least
 * `REPLICATION_COMPRESSION_MIN_BYTES` is packed, and only when packing saves an eighth: small
 * live frames cost nothing, and after a frame that did not pay the next 15 go unpacked without
 * trying, so incompressible values cost little CPU.
 *
 * The levels are the low ones measured fastest for their ratio on real record batches
 * (`deno run scripts/compression_measure.ts`, docs/benchmarks.md): zstd level 1 packs 1 MiB of
 * JSON records 7.9× at about 790 MB/s; deflate level 1 3.9× at 530 MB/s; brotli quality 1 5.1×
 * at 260 MB/s.
 *
 * A replica never trusts the size a frame claims: the claim must be within the node's bound
 * (`MAX_REQUEST_BYTES`, what an uncompressed frame may be), and unpacking stops at the claim, so
 * a zip bomb (a few KB that would unpack to gigabytes) is refused before it takes the memory.
 *
 * @module
 */
import * as zlib from "node:zlib";
import type { ReplicationCompression } from "../config.ts";

/** `REPLICATION_COMPRESSION`: a codec, or `off`. */
export type CompressionSetting = ReplicationCompression;
/** A stream codec. */
export type Codec = Exclude<CompressionSetting, "off">;
/** The codecs of the stream. */
export const CODECS: readonly Codec[] = ["zstd", "deflate", "brotli"];

interface CodecImpl {
  pack(bytes: Uint8Array): Uint8Array;
  unpack(bytes: Uint8Array, maxBytes: number): Uint8Array;
}

const IMPLS: Record<Codec, CodecImpl> = {
  zstd: {
    pack: (bytes) =>
      zlib.zstdCompressSync(bytes, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } }),
    unpack: (bytes, maxBytes) => zlib.zstdDecompressSync(bytes, { maxOutputLength: maxBytes }),
  },
  deflate: {
    pack: (bytes) => zlib.deflateRawSync(bytes, { level: 1 }),
    unpack: (bytes, maxBytes) => zlib.inflateRawSync(bytes, { maxOutputLength: maxBytes }),
  },
  brotli: {
    pack: (bytes) =>
      zlib.brotliCompressSync(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } }),
    unpack: (bytes, maxBytes) => zlib.brotliDecompressSync(bytes, { maxOutputLength: maxBytes }),
  },
};

/** True for a codec this node speaks. */
export function isCodec(name: string): name is Codec {
  return (CODECS as readonly string[]).includes(name);
}

/** The codec a replica with `setting` answers an offer of `offered` with, or "none". */
export function acceptCodec(
  setting: CompressionSetting,
  offered: readonly string[],
): Codec | "none" {
  if (setting === "off") return "none";
  for (const name of offered) if (isCodec(name)) return name;
  return "none";
}

/**
 * `bytes` packed with `codec`, or undefined when packing would not save at least 1/8 of them
 * (random values shrink by 7-8%, their record headers and keys: not worth the CPU).
 */
export function packBatch(codec: Codec, bytes: Uint8Array): Uint8Array | undefined {
  const packed = IMPLS[codec].pack(bytes);
  return packed.length <= bytes.length - (bytes.length >> 3) ? packed : undefined;
}

/** Frames sent as they are, without trying, after one that did not pay ({@link BatchPacker}). */
export const SKIP_AFTER_MISS_FRAMES = 15;

/**
 * Decides, frame by frame, what one stream packs: frames of at least `minBytes`, unless the last
 * try did not pay, in which case the next {@link SKIP_AFTER_MISS_FRAMES} go as they are without
 * trying (incompressible values then cost the master no compression CPU), and then it tries again.
 *
 * @example
 * ```ts
 * import { BatchPacker } from "./compression.ts";
 * const packer = new BatchPacker("zstd", 16);
 * console.log(packer.pack(new Uint8Array(1000))?.length); // 1000 zeros pack to a few bytes
 * ```
 */
export class BatchPacker {
  #skipFrames = 0;

  constructor(readonly codec: Codec, readonly minBytes: number) {}

  /** `bytes` packed, or undefined: send them as they are. */
  pack(bytes: Uint8Array): Uint8Array | undefined {
    if (bytes.length < this.minBytes) return undefined;
    if (this.#skipFrames > 0) {
      this.#skipFrames--;
      return undefined;
    }
    const packed = packBatch(this.codec, bytes);
    if (packed === undefined) this.#skipFrames = SKIP_AFTER_MISS_FRAMES;
    return packed;
  }
}

/** A compressed frame that cannot be unpacked within its bounds, or at all. */
export class CompressionError extends Error {
  override name = "CompressionError";
}

/**
 * Unpacks a frame that says it holds `rawBytes` bytes: refused when the claim is over
 * `maxBytes`, when the packed bytes unpack to more than the claim (unpacking stops there), to
 * fewer, or are not `codec` data at all.
 */
export function unpackBatch(
  codec: Codec,
  packed: Uint8Array,
  rawBytes: number,
  maxBytes: number,
): Uint8Array {
  if (rawBytes > maxBytes) {
    throw new CompressionError(
      `a compressed frame claims ${rawBytes} bytes unpacked, over this node's bound of ` +
        `${maxBytes} (MAX_REQUEST_BYTES); refused without unpacking`,
    );
  }
  let out: Uint8Array;
  try {
    out = IMPLS[codec].unpack(packed, rawBytes);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ERR_BUFFER_TOO_LARGE") {
      throw new CompressionError(
        `a compressed frame of ${packed.length} bytes unpacks to more than the ${rawBytes} ` +
          `it claims (a zip bomb?); unpacking stopped at ${rawBytes} bytes`,
      );
    }
    throw new CompressionError(
      `a ${packed.length}-byte ${codec} frame does not unpack: ` +
        `${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (out.length !== rawBytes) {
    throw new CompressionError(
      `a compressed frame unpacks to ${out.length} bytes, not the ${rawBytes} it claims`,
    );
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
