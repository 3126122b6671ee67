/**
 * `deno task bench <name>`: runs one benchmark script; each prints its figures and the command
 * that reproduces them. Benchmarks are never tests: nothing here fails on a number.
 *
 * @module
 */
const BENCHMARKS: Record<string, string> = {
  store: "./bench_store.ts",
  server: "./bench_server.ts",
  replication: "./bench_replication.ts",
  client: "./bench_client.ts",
  expiry: "./bench_expiry.ts",
  failover: "./bench_failover.ts",
  topology: "./bench_topology.ts",
};

const [name, ...rest] = Deno.args;
const script = name === undefined ? undefined : BENCHMARKS[name];
if (script === undefined) {
  console.error(`usage: deno task bench <${Object.keys(BENCHMARKS).join("|")}> [options]`);
  Deno.exit(2);
}
const module = await import(script);
await module.main(rest);
