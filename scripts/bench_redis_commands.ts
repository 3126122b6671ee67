/**
 * The Redis command figures of `deno task bench server` (issue 13): `MULTI`/`EXEC` of 10 `SET`s
 * (transactions/s, many connections, a few in flight on each) and a whole `SCAN` over 1,000,000
 * keys (keys/s, one client, `COUNT 1000`), each against kvstore and `redis-server` in the same run
 * on servers started for it at the same durability. Targets: each ≥ 0.8× Redis.
 *
 * The transactions run in the order kvstore, Redis, Redis, kvstore, and each server's figure is the
 * mean of its two runs: measured once each, whichever went first met a load generator whose
 * transaction code was not compiled yet (in 4 runs, kvstore first gave 0.60-0.88x, Redis first
 * 0.84-0.89x). The server's CPU per transaction (user + system, all threads) is printed beside.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { writeAll } from "../src/write_all.ts";
import { encodeCommand } from "../tests/helpers/resp3.ts";
import { cpuMeter } from "./process_cpu.ts";

const HOST = "127.0.0.1";
const decoder = new TextDecoder();

/** What one server did, for the table. */
export interface CommandFigures {
  /** MULTI + 10 SET + EXEC per second. */
  multiExecPerSecond: number;
  /** The server's CPU per transaction, µs (NaN when it cannot be read). */
  multiExecCpuUs: number;
  /** Keys a whole SCAN returned per second, and how many it returned. */
  scanKeysPerSecond: number;
  scanKeys: number;
  /** SCAN calls the whole scan took. */
  scanCalls: number;
}

function command(...words: string[]): Uint8Array {
  return encodeCommand(words);
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

/** One transaction: MULTI, 10 SETs of 16-byte keys and 100-byte values, EXEC. */
function transaction(seed: number): Uint8Array {
  const value = "x".repeat(100);
  const parts = [command("MULTI")];
  for (let i = 0; i < 10; i++) {
    parts.push(command("SET", `tx:${String((seed * 10 + i) % 100_000).padStart(13, "0")}`, value));
  }
  parts.push(command("EXEC"));
  return concat(parts);
}

/** Reply lines of one transaction: +OK, 10 +QUEUED, *10, 10 +OK (every one is one line). */
const LINES_PER_TRANSACTION = 22;

/** One connection sending transactions, `depth` in flight, until `stopAt`; returns how many. */
async function driveTransactions(port: number, depth: number, stopAt: number): Promise<number> {
  const conn = await Deno.connect({ hostname: HOST, port });
  conn.setNoDelay(true);
  const pool = Array.from(
    { length: 64 },
    (_, i) => transaction(Math.floor(Math.random() * 1e6) + i),
  );
  let sent = 0;
  let done = 0;
  let lines = 0;
  const buffer = new Uint8Array(1 << 16);
  try {
    for (; sent < depth; sent++) await writeAll(conn, pool[sent % pool.length]);
    while (done < sent) {
      const count = await conn.read(buffer);
      if (count === null) throw new Error("the server closed a benchmark connection");
      for (let i = 0; i < count; i++) if (buffer[i] === 0x0a) lines++;
      const finished = Math.floor(lines / LINES_PER_TRANSACTION) - done;
      done += finished;
      if (performance.now() < stopAt) {
        for (let i = 0; i < finished; i++, sent++) {
          await writeAll(conn, pool[sent % pool.length]);
        }
      }
    }
  } finally {
    conn.close();
  }
  return done;
}

/** One server's transactions: per second, and its CPU µs per transaction. */
export interface TransactionFigures {
  perSecond: number;
  cpuUs: number;
}

/** Transactions on the server at `port` (process `pid`) for `seconds`, after a warm-up. */
export async function measureTransactions(
  port: number,
  pid: number,
  seconds: number,
): Promise<TransactionFigures> {
  const warmUp = performance.now() + 300;
  await Promise.all(Array.from({ length: 10 }, () => driveTransactions(port, 4, warmUp)));
  const cpu = cpuMeter([pid]);
  const started = performance.now();
  const stopAt = started + seconds * 1000;
  const counts = await Promise.all(
    Array.from({ length: 50 }, () => driveTransactions(port, 4, stopAt)),
  );
  const elapsed = (performance.now() - started) / 1000;
  const [cpuSeconds] = cpu();
  const total = counts.reduce((sum, count) => sum + count, 0);
  return { perSecond: total / elapsed, cpuUs: cpuSeconds * 1e6 / total };
}

/**
 * Transactions on kvstore and Redis in the order kvstore, Redis, Redis, kvstore; each figure the
 * mean of its server's two runs (see the module comment). Redis absent: kvstore's two runs.
 */
export async function measureTransactionsBoth(
  kvstore: { port: number; pid: number },
  redis: { port: number; pid: number } | undefined,
  seconds: number,
): Promise<[TransactionFigures, TransactionFigures | undefined]> {
  const runs = redis === undefined ? [kvstore, kvstore] : [kvstore, redis, redis, kvstore];
  const figures: TransactionFigures[] = [];
  for (const server of runs) {
    figures.push(await measureTransactions(server.port, server.pid, seconds));
  }
  const mean = (a: TransactionFigures, b: TransactionFigures): TransactionFigures => ({
    perSecond: (a.perSecond + b.perSecond) / 2,
    cpuUs: (a.cpuUs + b.cpuUs) / 2,
  });
  if (redis === undefined) return [mean(figures[0], figures[1]), undefined];
  return [mean(figures[0], figures[3]), mean(figures[1], figures[2])];
}

/** Writes `keys` keys (`scan:<n>`, 10-byte values) with pipelined MSETs of 1000 pairs. */
async function fill(port: number, keys: number): Promise<void> {
  const conn = await Deno.connect({ hostname: HOST, port });
  try {
    const buffer = new Uint8Array(1 << 16);
    const batch = 1000;
    const inFlight = 16;
    let sent = 0;
    let answered = 0;
    const sendNext = async () => {
      const words = ["MSET"];
      for (let i = 0; i < batch && sent * batch + i < keys; i++) {
        words.push(`scan:${String(sent * batch + i).padStart(10, "0")}`, "0123456789");
      }
      sent++;
      await writeAll(conn, command(...words));
    };
    const batches = Math.ceil(keys / batch);
    while (sent < Math.min(inFlight, batches)) await sendNext();
    while (answered < batches) {
      const count = await conn.read(buffer);
      if (count === null) throw new Error("the server closed the fill connection");
      for (let i = 0; i < count; i++) {
        if (buffer[i] !== 0x0a) continue;
        answered++;
        if (sent < batches) await sendNext();
      }
    }
  } finally {
    conn.close();
  }
}

/** Reads one SCAN reply from `conn`: the next cursor and how many keys it held. */
class ScanReader {
  #buffer: Uint8Array = new Uint8Array(0);
  constructor(readonly conn: Deno.Conn) {}

  async #line(): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf(0x0a);
      if (end !== -1) {
        const line = decoder.decode(this.#buffer.subarray(0, end - 1));
        this.#buffer = this.#buffer.subarray(end + 1);
        return line;
      }
      await this.#more();
    }
  }

  async #more(): Promise<void> {
    const chunk = new Uint8Array(1 << 16);
    const count = await this.conn.read(chunk);
    if (count === null) throw new Error("the server closed the SCAN connection");
    this.#buffer = concat([this.#buffer, chunk.subarray(0, count)]);
  }

  async #skip(bytes: number): Promise<void> {
    while (this.#buffer.length < bytes) await this.#more();
    this.#buffer = this.#buffer.subarray(bytes);
  }

  async reply(): Promise<[string, number]> {
    await this.#line(); // *2
    await this.#line(); // $len
    const cursor = await this.#line();
    const count = Number((await this.#line()).slice(1));
    for (let i = 0; i < count; i++) {
      const length = Number((await this.#line()).slice(1));
      await this.#skip(length + 2);
    }
    return [cursor, count];
  }
}

/** A whole SCAN with COUNT 1000: keys returned, calls, seconds. */
async function wholeScan(port: number): Promise<[number, number, number]> {
  const conn = await Deno.connect({ hostname: HOST, port });
  conn.setNoDelay(true);
  try {
    const reader = new ScanReader(conn);
    let cursor = "0";
    let keys = 0;
    let calls = 0;
    const started = performance.now();
    do {
      await writeAll(conn, command("SCAN", cursor, "COUNT", "1000"));
      const [next, count] = await reader.reply();
      cursor = next;
      keys += count;
      calls++;
    } while (cursor !== "0");
    return [keys, calls, (performance.now() - started) / 1000];
  } finally {
    conn.close();
  }
}

/** Fills one server with `scanKeys` keys and scans them; with `transactions`, its figures. */
export async function measureScan(
  port: number,
  scanKeys: number,
  transactions: TransactionFigures,
): Promise<CommandFigures> {
  await fill(port, scanKeys);
  const [keys, calls, elapsed] = await wholeScan(port);
  return {
    multiExecPerSecond: transactions.perSecond,
    multiExecCpuUs: transactions.cpuUs,
    scanKeysPerSecond: keys / elapsed,
    scanKeys: keys,
    scanCalls: calls,
  };
}

/** The table rows of one run: each figure, Redis's, and the ratio against the 0.8× target. */
export function commandRows(kv: CommandFigures, redis: CommandFigures | undefined): string[] {
  const row = (name: string, ours: number, theirs: number | undefined, unit: string) => {
    const ratio = theirs === undefined ? "" : `   ${(ours / theirs).toFixed(2)}x (target ≥ 0.8x)`;
    const redisText = theirs === undefined ? "-" : Math.round(theirs).toLocaleString("en-US");
    return `${name.padEnd(28)} kvstore ${Math.round(ours).toLocaleString("en-US").padStart(11)} ` +
      `${unit}   redis ${redisText.padStart(11)} ${unit}${ratio}`;
  };
  const cpu = (figures: CommandFigures | undefined) =>
    figures === undefined || Number.isNaN(figures.multiExecCpuUs)
      ? "-"
      : `${figures.multiExecCpuUs.toFixed(1)} µs`;
  return [
    row("MULTI + 10 SET + EXEC, 50x4", kv.multiExecPerSecond, redis?.multiExecPerSecond, "tx/s"),
    `${"  server CPU per transaction".padEnd(28)} kvstore ${cpu(kv).padStart(16)}   redis ${
      cpu(redis).padStart(16)
    }`,
    row(
      `SCAN COUNT 1000 over ${(kv.scanKeys / 1e6).toFixed(1)}M`,
      kv.scanKeysPerSecond,
      redis?.scanKeysPerSecond,
      "keys/s",
    ),
  ];
}
