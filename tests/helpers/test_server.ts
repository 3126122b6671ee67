/**
 * An in-process server for tests: `startServer` on 127.0.0.1 port 0 with a temporary data
 * directory, closed and removed by `await using`.
 *
 * @module
 */
import { type Config, loadConfig } from "../../src/config.ts";
import { type RunningServer, startServer, type StartServerOptions } from "../../src/server/mod.ts";

/** A running in-process server that cleans up after itself. */
export interface TestServer extends RunningServer, AsyncDisposable {
  readonly dataDir: string;
}

/** Starts a server with `overrides` on top of the defaults (port 0, a temporary data dir). */
export async function startTestServer(
  overrides: Partial<Config> = {},
  options: StartServerOptions = {},
): Promise<TestServer> {
  const dataDir = await Deno.makeTempDir({ prefix: "kvstore-test-" });
  try {
    const { config } = loadConfig({
      overrides: { HOST: "127.0.0.1", PORT: 0, DATA_DIR: dataDir, ...overrides },
    });
    const server = await startServer(config, options);
    return {
      get host() {
        return server.host;
      },
      get port() {
        return server.port;
      },
      get respPort() {
        return server.respPort;
      },
      get node() {
        return server.node;
      },
      get closed() {
        return server.closed;
      },
      close: () => server.close(),
      dataDir,
      [Symbol.asyncDispose]: async () => {
        await server.close();
        await Deno.remove(dataDir, { recursive: true });
      },
    };
  } catch (error) {
    await Deno.remove(dataDir, { recursive: true });
    throw error;
  }
}

/**
 * Settings of in-process replication tests: no fsync, a short reply timeout and quick retries,
 * so a link notices a change (a node closed, a filter changed) within a second.
 */
export const FAST_REPLICATION: Partial<Config> = {
  FSYNC: "no",
  REPLICATION_TIMEOUT: 2,
  REPLICATION_HEALTH_CHECK_INTERVAL: 0.2,
  REPLICATION_RETRY_BACKOFF_MS: 20,
};
