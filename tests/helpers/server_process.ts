/**
 * Runs `cli.ts serve` as a real child process for tests: `--port 0`, `--log-format json`, a
 * temporary data directory (unless one is given), and waits for the log line with
 * `event: "listening"` to learn the port. Every line the server logs is kept (parsed) for
 * assertions. Use it with `await using`, or call `stop()` in a `finally`: the child is always
 * killed and the temporary directory removed, also when a test fails.
 *
 * @module
 */

const CLI = new URL("../../cli.ts", import.meta.url);
const ROOT = new URL("../..", import.meta.url);

/** One parsed JSON log line of the server. */
export interface LogLine {
  /** When the server logged it (ISO 8601, the server's clock: this machine's). */
  "@timestamp": string;
  level: string;
  message: string;
  logger: string;
  properties: Record<string, unknown>;
}

/** How a server process ended. */
export interface ServerExit {
  code: number;
  signal: Deno.Signal | null;
}

/** Options of {@link startServerProcess}. */
export interface ServerProcessOptions {
  /** Extra `serve` flags (e.g. `["--replica"]`, `["--fsync", "no"]`). */
  args?: string[];
  /** Data directory to use (kept afterwards); default: a new temporary one, removed on stop. */
  dataDir?: string;
  /** Extra environment variables for the child. */
  env?: Record<string, string>;
  /** How long to wait for the "listening" line. Default 20000. */
  startTimeoutMs?: number;
  /** Extra `deno run` flags before the script (benchmarks: `--cpu-prof`, `--cpu-prof-dir=D`). */
  denoArgs?: string[];
}

/** A running server process. */
export interface ServerProcess extends AsyncDisposable {
  readonly port: number;
  /** The RESP-only listener's port (with `--resp-port`), else undefined. */
  readonly respPort: number | undefined;
  readonly pid: number;
  readonly dataDir: string;
  /** Every log line so far. */
  readonly logs: LogLine[];
  /** Resolves when the process has exited. */
  readonly exited: Promise<ServerExit>;
  /** Graceful stop: SIGTERM, then SIGKILL if it has not exited within `timeoutMs` (10000). */
  stop(timeoutMs?: number): Promise<ServerExit>;
  /** Sends `signal` (default SIGKILL) and waits for the exit. */
  kill(signal?: Deno.Signal): Promise<ServerExit>;
  /** Resolves with the first log line (already logged or future) that `matches`. */
  waitForLog(matches: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
}

/** Starts `kvstore serve` in a child process and waits until it listens. */
export async function startServerProcess(
  options: ServerProcessOptions = {},
): Promise<ServerProcess> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "kvstore-test-" });
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      ...(options.denoArgs ?? []),
      CLI.pathname,
      "serve",
      "--port",
      "0",
      "--log-format",
      "json",
      "--data-dir",
      dataDir,
      ...(options.args ?? []),
    ],
    cwd: ROOT.pathname,
    env: options.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  });
  const child = command.spawn();
  const logs: LogLine[] = [];
  const waiters = new Set<{ matches: (line: LogLine) => boolean; resolve(line: LogLine): void }>();
  const stderrText: string[] = [];
  const reading = (async () => {
    let pending = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      let newline;
      while ((newline = pending.indexOf("\n")) !== -1) {
        const text = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        stderrText.push(text);
        let line: LogLine;
        try {
          line = JSON.parse(text);
        } catch {
          continue;
        }
        logs.push(line);
        for (const waiter of waiters) {
          if (waiter.matches(line)) {
            waiters.delete(waiter);
            waiter.resolve(line);
          }
        }
      }
    }
  })();
  let exitStatus: ServerExit | undefined;
  const exited = child.status.then(async (status) => {
    await reading;
    exitStatus = { code: status.code, signal: status.signal };
    return exitStatus;
  });
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    if (ownDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  };
  const waitForLog = (matches: (line: LogLine) => boolean, timeoutMs = 20_000) => {
    const found = logs.find(matches);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<LogLine>((resolve, reject) => {
      const waiter = {
        matches,
        resolve: (line: LogLine) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`no matching log line within ${timeoutMs} ms:\n${stderrText.join("\n")}`));
      }, timeoutMs);
      waiters.add(waiter);
      exited.then(() => {
        if (!waiters.delete(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`the server exited first:\n${stderrText.join("\n")}`));
      });
    });
  };
  const kill = async (signal: Deno.Signal = "SIGKILL") => {
    if (exitStatus === undefined) {
      try {
        child.kill(signal);
      } catch {
        // It exited meanwhile.
      }
    }
    const status = await exited;
    await cleanup();
    return status;
  };
  const stop = async (timeoutMs = 10_000) => {
    if (exitStatus !== undefined) {
      await cleanup();
      return exitStatus;
    }
    try {
      child.kill("SIGTERM");
    } catch {
      // It exited meanwhile.
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // It exited meanwhile.
      }
    }, timeoutMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
      await cleanup();
    }
  };
  let listening: LogLine;
  try {
    listening = await waitForLog(
      (line) => line.properties?.event === "listening",
      options.startTimeoutMs ?? 20_000,
    );
  } catch (error) {
    await kill("SIGKILL");
    throw error;
  }
  return {
    port: listening.properties.port as number,
    respPort: listening.properties.respPort as number | undefined,
    pid: child.pid,
    dataDir,
    logs,
    exited,
    stop,
    kill,
    waitForLog,
    [Symbol.asyncDispose]: async () => {
      await kill("SIGKILL");
    },
  };
}
