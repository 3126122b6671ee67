/**
 * The watch on the cluster's keys in etcd: one stream at a time from the revision after the
 * view's, each batch of events applied to the {@link ClusterView} and handed on. A broken stream
 * is opened again after a backoff (50 ms, doubling up to the coordinator's tick); a stream on an
 * endpoint that requests no longer go to is ended, so a member that stopped answering (paused,
 * partitioned) cannot leave it open and silent. Ends when the coordinator's signal aborts.
 *
 * @module
 */
import { getLog } from "../log.ts";
import type { ClusterView } from "./cluster_view.ts";
import type { EtcdClient, WatchEvent } from "./etcd_client.ts";

const log = getLog("coordinator");

/** The first backoff after a broken stream, and the wait for the first read of the view. */
const FIRST_BACKOFF_MS = 50;

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** What a watch works with. */
export interface ClusterWatchOptions {
  client: Pick<EtcdClient, "watch" | "preferredEndpoint">;
  /** The cluster's key prefix. */
  prefix: string;
  view: ClusterView;
  /** Events were applied to the view. */
  onEvents(): void;
  /** Ends the watch (the coordinator stops). */
  signal: AbortSignal;
  /** The longest backoff between two streams (the coordinator's tick). */
  maxBackoffMs: number;
}

/** The coordinator's watch; see the module comment. */
export class ClusterWatch {
  readonly #options: ClusterWatchOptions;
  /** The running stream: the endpoint it streams from, and how to end it. */
  #stream: { endpoint: string; abort: AbortController } | undefined;

  constructor(options: ClusterWatchOptions) {
    this.#options = options;
  }

  /** Watches until the signal aborts (waits for the view's first read to know where to start). */
  async run(): Promise<void> {
    const { client, prefix, view, signal, maxBackoffMs } = this.#options;
    let backoffMs = FIRST_BACKOFF_MS;
    while (!signal.aborted) {
      if (view.revision === 0) {
        await sleepUnlessAborted(FIRST_BACKOFF_MS, signal);
        continue;
      }
      const stream = new AbortController();
      this.#stream = { endpoint: client.preferredEndpoint, abort: stream };
      try {
        await client.watch(
          prefix,
          view.revision + 1,
          (events) => this.#onEvents(events),
          AbortSignal.any([signal, stream.signal]),
        );
        backoffMs = FIRST_BACKOFF_MS;
      } catch (error) {
        if (signal.aborted) return;
        log.debug("watch: {error}", {
          error: error instanceof Error ? error.message : String(error),
        });
        await sleepUnlessAborted(backoffMs, signal);
        backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
      }
    }
  }

  /** Requests moved to another endpoint: the stream follows (ended here, opened there). */
  followRequests(): void {
    const stream = this.#stream;
    const preferred = this.#options.client.preferredEndpoint;
    if (stream === undefined || stream.endpoint === preferred) return;
    log.info("etcd requests moved to {endpoint}: the watch follows", {
      event: "watch_moved",
      endpoint: preferred,
    });
    stream.abort.abort();
  }

  #onEvents(events: WatchEvent[]): void {
    this.#options.view.applyEvents(events, performance.now());
    this.#options.onEvents();
  }
}
