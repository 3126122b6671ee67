/**
 * A real etcd for tests: one member or three, on free loopback ports, in a temporary data
 * directory, each member a child process stopped by its PID (SIGKILL, SIGSTOP or a restart on the
 * same ports and data). Tests that need etcd skip themselves, saying why, when the `etcd` binary
 * is missing ({@link etcdMissing}; `.ci/run` installs Debian's `etcd-server`).
 *
 * @module
 */
import { freePort } from "./cluster.ts";
import { waitUntil } from "./wait.ts";

/** Why etcd tests cannot run here, or undefined when they can. */
export function etcdMissing(): string | undefined {
  try {
    const status = new Deno.Command("etcd", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync();
    return status.success ? undefined : "etcd --version failed";
  } catch {
    return "the etcd binary is not installed (apt-get install etcd-server)";
  }
}

/** One etcd member process. */
export interface EtcdMember {
  readonly name: string;
  /** `http://127.0.0.1:<port>`. */
  readonly clientUrl: string;
  readonly pid: number;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** Sends a signal (SIGSTOP, SIGCONT) without waiting. */
  signal(signal: Deno.Signal): void;
  /** Starts it again on the same ports and data (after kill). */
  restart(): Promise<void>;
  readonly running: boolean;
}

/** A running etcd cluster. */
export interface EtcdCluster extends AsyncDisposable {
  /** The members' client URLs. */
  readonly endpoints: string[];
  readonly members: EtcdMember[];
  /** Kills every member and removes the data directory. */
  stop(): Promise<void>;
}

class Member implements EtcdMember {
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<unknown> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly clientUrl: string,
    readonly peerUrl: string,
    readonly dataDir: string,
    readonly initialCluster: string,
    readonly logFile: string,
  ) {}

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  start(): void {
    const log = Deno.openSync(this.logFile, { append: true, create: true });
    const child = new Deno.Command("etcd", {
      args: [
        "--name",
        this.name,
        "--data-dir",
        this.dataDir,
        "--listen-client-urls",
        this.clientUrl,
        "--advertise-client-urls",
        this.clientUrl,
        "--listen-peer-urls",
        this.peerUrl,
        "--initial-advertise-peer-urls",
        this.peerUrl,
        "--initial-cluster",
        this.initialCluster,
        "--initial-cluster-state",
        "new",
        // Quick elections among test members (the lease minimum stays 2 s at most).
        "--heartbeat-interval",
        "50",
        "--election-timeout",
        "500",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // etcd logs a lot on stderr: keep it in a file for failure reports.
    child.stderr.pipeTo(log.writable).catch(() => {});
    this.#child = child;
    this.#exited = child.status;
  }

  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    } catch {
      // exited already
    }
    await this.#exited;
  }

  signal(signal: Deno.Signal): void {
    this.#child?.kill(signal);
  }

  async restart(): Promise<void> {
    await this.kill();
    this.start();
    await waitReady(this.clientUrl);
  }
}

/** True once `url` serves a read. */
async function ready(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: btoa("ready") }),
      signal: AbortSignal.timeout(1000),
    });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

async function waitReady(url: string): Promise<void> {
  await waitUntil(`etcd at ${url}`, () => ready(url), 20_000);
}

/** Starts an etcd of `members` members (1 or 3) and waits until every one serves. */
export async function startEtcd(options: { members?: 1 | 3 } = {}): Promise<EtcdCluster> {
  const count = options.members ?? 1;
  const dir = await Deno.makeTempDir({ prefix: "kvstore-etcd-" });
  const specs = Array.from({ length: count }, (_, i) => ({
    name: `etcd${i + 1}`,
    clientUrl: `http://127.0.0.1:${freePort()}`,
    peerUrl: `http://127.0.0.1:${freePort()}`,
  }));
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(",");
  const members = specs.map((s) =>
    new Member(
      s.name,
      s.clientUrl,
      s.peerUrl,
      `${dir}/${s.name}`,
      initialCluster,
      `${dir}/${s.name}.log`,
    )
  );
  const stop = async () => {
    await Promise.all(members.map((m) => m.kill()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    for (const member of members) member.start();
    await Promise.all(members.map((m) => waitReady(m.clientUrl)));
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    endpoints: members.map((m) => m.clientUrl),
    members,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
