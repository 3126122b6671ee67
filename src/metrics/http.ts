/**
 * The metrics endpoint (`--metrics-port`): `GET /metrics` in Prometheus text format and
 * `GET /health` (200 while the node serves; 503 with the reason otherwise), on `Deno.serve`.
 *
 * @module
 */
import type { Registry } from "./registry.ts";

/** What `/health` reports. */
export interface HealthReport {
  /** True while the node serves requests (and, for a replica, whatever the caller requires). */
  healthy: boolean;
  /** Extra fields of the JSON body, e.g. role and replication link state. */
  details: Record<string, unknown>;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  readonly host: string;
  readonly port: number;
  /** Stops listening and waits for in-flight scrapes. */
  close(): Promise<void>;
}

/** Starts the endpoint on `host:port` (port 0 picks a free one). */
export function startMetricsServer(options: {
  host: string;
  port: number;
  registry: Registry;
  health: () => HealthReport;
}): Promise<MetricsServer> {
  const { promise, resolve } = Promise.withResolvers<MetricsServer>();
  const server = Deno.serve({
    hostname: options.host,
    port: options.port,
    onListen: (address) => {
      resolve({
        host: address.hostname,
        port: address.port,
        close: () => server.shutdown(),
      });
    },
  }, (request) => {
    const path = new URL(request.url).pathname;
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET" } });
    }
    if (path === "/metrics") {
      return new Response(options.registry.render(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    if (path === "/health") {
      const report = options.health();
      return Response.json(
        { status: report.healthy ? "ok" : "unavailable", ...report.details },
        { status: report.healthy ? 200 : 503 },
      );
    }
    return new Response("not found: try /metrics or /health\n", { status: 404 });
  });
  return promise;
}
