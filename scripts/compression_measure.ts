/**
 * `deno run scripts/compression_measure.ts`: compares zstd, deflate and brotli at low levels on
 * replication batches of real log records (PUTs encoded by the storage codec) of three kinds of
 * value: JSON documents, English-like text and random bytes. Prints the ratio and the compress
 * and decompress speeds (MB/s of uncompressed bytes) per codec, level and batch size: the figures
 * behind REPLICATION_COMPRESSION's default (docs/benchmarks.md, "Replication compression").
 *
 * @module
 */
import * as zlib from "node:zlib";
import { encodePut } from "../src/storage/record.ts";

type Codec = {
  name: string;
  compress(b: Uint8Array): Uint8Array;
  decompress(b: Uint8Array): Uint8Array;
};

const codecs: Codec[] = [
  ...[1, 3].map((level) => ({
    name: `zstd-${level}`,
    compress: (b: Uint8Array) =>
      zlib.zstdCompressSync(b, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } }),
    decompress: (b: Uint8Array) => zlib.zstdDecompressSync(b),
  })),
  ...[1, 6].map((level) => ({
    name: `deflate-${level}`,
    compress: (b: Uint8Array) => zlib.deflateRawSync(b, { level }),
    decompress: (b: Uint8Array) => zlib.inflateRawSync(b),
  })),
  ...[1, 4].map((quality) => ({
    name: `brotli-${quality}`,
    compress: (b: Uint8Array) =>
      zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: quality } }),
    decompress: (b: Uint8Array) => zlib.brotliDecompressSync(b),
  })),
];

const words = ("the of and to in is that for it as was with be by on not he this are or his " +
  "from at which but have an they you were her she there been one all we their has would when " +
  "replica master record batch value session order account status pending shipped").split(" ");
let seed = 42;
function rand(): number {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
}
const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];

const values: Record<string, (i: number) => Uint8Array> = {
  json: (i) =>
    new TextEncoder().encode(JSON.stringify({
      id: i,
      user: `user${Math.floor(rand() * 100000)}`,
      email: `user${Math.floor(rand() * 100000)}@example.com`,
      status: pick(["pending", "shipped", "delivered", "cancelled"]),
      total: Math.round(rand() * 100000) / 100,
      items: Array.from({ length: 1 + Math.floor(rand() * 3) }, () => ({
        sku: `SKU-${Math.floor(rand() * 9999)}`,
        qty: 1 + Math.floor(rand() * 5),
      })),
      createdAt: new Date(1_700_000_000_000 + i * 1000).toISOString(),
    })),
  text: () => new TextEncoder().encode(Array.from({ length: 40 }, () => pick(words)).join(" ")),
  random: () => crypto.getRandomValues(new Uint8Array(200)),
};

/** A batch of PUT records of about `sizeBytes`, as the log holds them. */
function batch(kind: string, sizeBytes: number): Uint8Array {
  const out = new Uint8Array(sizeBytes + 64 * 1024);
  const view = new DataView(out.buffer);
  let at = 0;
  for (let i = 0; at < sizeBytes; i++) {
    at += encodePut(out, view, at, 1_000_000 + i, 3, 0, `order:${100000 + i}`, values[kind](i));
  }
  return out.subarray(0, at);
}

function timeMbPerSecond(bytes: number, run: () => void): number {
  let rounds = 0;
  const start = performance.now();
  while (performance.now() - start < 300) {
    run();
    rounds++;
  }
  return (bytes * rounds) / 1e6 / ((performance.now() - start) / 1000);
}

console.log("kind    batch     codec        ratio  compress MB/s  decompress MB/s");
for (const kind of Object.keys(values)) {
  for (const size of [4 * 1024, 64 * 1024, 1024 * 1024]) {
    const input = batch(kind, size);
    for (const codec of codecs) {
      const packed = codec.compress(input);
      if (codec.decompress(packed).length !== input.length) throw new Error(codec.name);
      const c = timeMbPerSecond(input.length, () => codec.compress(input));
      const d = timeMbPerSecond(input.length, () => codec.decompress(packed));
      console.log(
        `${kind.padEnd(7)} ${String(input.length).padStart(8)}  ${codec.name.padEnd(11)} ` +
          `${(input.length / packed.length).toFixed(2).padStart(6)} ${c.toFixed(0).padStart(14)} ` +
          `${d.toFixed(0).padStart(16)}`,
      );
    }
  }
}
