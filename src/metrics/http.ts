/**
 * The metrics endpoint (`--metrics-port`), on `Deno.serve`: `GET /metrics` in Prometheus text
 * format, `GET /health` (200 while the node serves; 503 with the reason otherwise), and the status
 * page: `GET /` (HTML), `GET /status.json` (its data) and the page's assets, uPlot included, all
 * from the executable itself.
 *
 * @module
 */
import type { Registry } from "./registry.ts";
import type { StatusReport } from "./status.ts";
import { STATUS_ASSETS, STATUS_CSS, STATUS_HTML, STATUS_JS } from "./status_page.ts";
import { UPLOT_CSS, UPLOT_JS } from "./uplot_bundle.ts";

/** Headers of every page response: nothing from elsewhere may load, nothing may frame it. */
const PAGE_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** The page's static files: path → body and content type. */
const STATIC_FILES = new Map<string, { body: string; type: string; immutable: boolean }>([
  ["/", { body: STATUS_HTML, type: "text/html; charset=utf-8", immutable: false }],
  [STATUS_ASSETS.script, {
    body: STATUS_JS,
    type: "text/javascript; charset=utf-8",
    immutable: false,
  }],
  [STATUS_ASSETS.style, { body: STATUS_CSS, type: "text/css; charset=utf-8", immutable: false }],
  [STATUS_ASSETS.uplotScript, {
    body: UPLOT_JS,
    type: "text/javascript; charset=utf-8",
    immutable: true,
  }],
  [STATUS_ASSETS.uplotStyle, { body: UPLOT_CSS, type: "text/css; charset=utf-8", immutable: true }],
]);

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
  /** The status page's data; without it, `/` and `/status.json` are not served. */
  status?: () => StatusReport;
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
    if (options.status !== undefined) {
      if (path === "/status.json") {
        return Response.json(options.status(), {
          headers: { "cache-control": "no-store", ...PAGE_HEADERS },
        });
      }
      const file = STATIC_FILES.get(path === "/index.html" ? "/" : path);
      if (file !== undefined) {
        return new Response(file.body, {
          headers: {
            "content-type": file.type,
            "cache-control": file.immutable ? "public, max-age=31536000, immutable" : "no-cache",
            ...PAGE_HEADERS,
          },
        });
      }
    }
    return new Response("not found: try /, /status.json, /metrics or /health\n", {
      status: 404,
    });
  });
  return promise;
}
