/**
 * Runs Redis's own load generator, `redis-benchmark`, against a RESP server on 127.0.0.1 (Redis
 * or kvstore) with 100-byte values over 100,000 random keys, and reads its CSV summary. The
 * server and replication benchmarks use it alike, so both systems face one and the same client.
 *
 * @module
 */

/** One `redis-benchmark` row: a command's throughput and median latency. */
export interface RedisBenchmarkRow {
  requestsPerSecond: number;
  p50Ms: number;
}

/** What to run. */
export interface RedisBenchmarkOptions {
  port: number;
  /** `-t`: the commands, e.g. `["set", "get"]`. */
  commands: readonly string[];
  /** `-n`: requests per command. */
  requests: number;
  /** `-c`: connections. */
  clients?: number;
  /** `-P`: requests in flight per connection. */
  pipeline?: number;
}

/** Runs `redis-benchmark --csv`; returns its rows in the order of `options.commands`. */
export async function runRedisBenchmark(
  options: RedisBenchmarkOptions,
): Promise<RedisBenchmarkRow[]> {
  const output = await new Deno.Command("redis-benchmark", {
    args: [
      ["-h", "127.0.0.1"],
      ["-p", String(options.port)],
      ["-t", options.commands.join(",")],
      ["-n", String(options.requests)],
      ["-c", String(options.clients ?? 50)],
      ["-P", String(options.pipeline ?? 1)],
      ["-d", "100"],
      ["-r", "100000"],
      ["--csv"],
    ].flat(),
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  const rows = new Map<string, RedisBenchmarkRow>();
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
  for (const line of text.split("\n")) {
    const cells = line.split(",").map((cell) => cell.replaceAll('"', ""));
    const requestsPerSecond = Number(cells[1]);
    if (cells.length < 5 || !Number.isFinite(requestsPerSecond)) continue;
    rows.set(cells[0], { requestsPerSecond, p50Ms: Number(cells[4]) });
  }
  return options.commands.map((command) => {
    const row = rows.get(command.toUpperCase());
    if (row === undefined) {
      throw new Error(`redis-benchmark printed no ${command.toUpperCase()} row: ${text}`);
    }
    return row;
  });
}
