import assert from "node:assert/strict";
import {
  ConfigError,
  defaultConfig,
  describeSettings,
  envName,
  flagName,
  loadConfig,
  parseHostPort,
  SETTINGS,
} from "../src/config.ts";

Deno.test("defaults match the spec's configuration table", () => {
  const config = defaultConfig();
  assert.equal(config.REPLICATION_ENABLED, false);
  assert.equal(config.REPLICATION_MODE, "async");
  assert.deepEqual(config.REPLICA_ADDRESSES, []);
  assert.equal(config.REPLICATION_MAX_RETRIES, 3);
  assert.equal(config.REPLICATION_QUEUE_SIZE, 10000);
  assert.equal(config.REPLICATION_MAX_FAILURES, 3);
  assert.equal(config.REPLICATION_HEALTH_CHECK_INTERVAL, 30);
  assert.equal(config.REPLICATION_TIMEOUT, 5.0);
  assert.equal(config.HOST, "127.0.0.1");
  assert.equal(config.PORT, 5555);
  assert.equal(config.FSYNC, "always");
});

Deno.test("flag and environment names follow one rule", () => {
  assert.equal(flagName("REPLICATION_QUEUE_SIZE"), "replication-queue-size");
  assert.equal(envName("REPLICATION_QUEUE_SIZE"), "KVSTORE_REPLICATION_QUEUE_SIZE");
  for (const row of describeSettings()) {
    assert.ok(row.flag.startsWith(`--${flagName(row.name)}`), row.name);
    assert.equal(row.env, `KVSTORE_${row.name}`);
  }
});

Deno.test("flags win over environment, environment over defaults", () => {
  const { config, positionals } = loadConfig({
    args: ["serve", "--port", "6000", "--replication-mode=sync"],
    env: { KVSTORE_PORT: "7000", KVSTORE_REPLICATION_QUEUE_SIZE: "50", OTHER: "x" },
  });
  assert.deepEqual(positionals, ["serve"]);
  assert.equal(config.PORT, 6000);
  assert.equal(config.REPLICATION_MODE, "sync");
  assert.equal(config.REPLICATION_QUEUE_SIZE, 50);
});

Deno.test("the spec's --replicas flag sets REPLICA_ADDRESSES and enables replication", () => {
  const { config } = loadConfig({
    args: ["--replicas", "localhost:5556,127.0.0.1:5557", "--replication-mode", "async"],
  });
  assert.deepEqual(config.REPLICA_ADDRESSES, [
    { host: "localhost", port: 5556 },
    { host: "127.0.0.1", port: 5557 },
  ]);
  assert.equal(config.REPLICATION_ENABLED, true);
  const disabled = loadConfig({
    args: ["--replicas", "localhost:5556", "--no-replication-enabled"],
  });
  assert.equal(disabled.config.REPLICATION_ENABLED, false);
});

Deno.test("bad values get an error that names the value and the limit", () => {
  assert.throws(
    () => loadConfig({ args: ["--port", "70000"] }),
    /PORT: 70000 is above the maximum 65535/,
  );
  assert.throws(
    () => loadConfig({ args: ["--fsync", "sometimes"] }),
    /not one of always, everysec, no/,
  );
  assert.throws(
    () => loadConfig({ args: ["--replication-queue-size", "1.5"] }),
    /not a whole number/,
  );
  assert.throws(() => loadConfig({ args: ["--bogus"] }), /unknown option --bogus/);
  assert.throws(() => loadConfig({ args: ["--port"] }), /needs a value/);
  assert.throws(() => loadConfig({ env: { KVSTORE_REPLICA: "maybe" } }), ConfigError);
  // Cascading: a replica may have replicas of its own.
  const cascading = loadConfig({ args: ["--replica", "--replicas", "a:1"] }).config;
  assert.equal(cascading.REPLICATION_ENABLED, true);
  assert.deepEqual(cascading.REPLICA_ADDRESSES, [{ host: "a", port: 1 }]);
  assert.throws(
    () => loadConfig({ args: ["--replicas", "a:1", "--sync-replicas", "2"] }),
    /SYNC_REPLICAS: 2 is more than the 1 replicas/,
  );
});

Deno.test("host:port parsing accepts names, IPv4 and bracketed IPv6", () => {
  assert.deepEqual(parseHostPort("[::1]:5555"), { host: "::1", port: 5555 });
  assert.deepEqual(parseHostPort("db-2.example:1"), { host: "db-2.example", port: 1 });
  assert.throws(() => parseHostPort("nohost"), /is not host:port/);
  assert.throws(() => parseHostPort("h:0"), /outside 1..65535/);
});

Deno.test("programmatic overrides are validated like flags", () => {
  const { config } = loadConfig({ overrides: { REPLICATION_MODE: "sync", SYNC_REPLICAS: 0 } });
  assert.equal(config.REPLICATION_MODE, "sync");
  assert.throws(() => loadConfig({ overrides: { SEGMENT_SIZE_BYTES: 10 } }), /below the minimum/);
});

Deno.test("every setting has a description and a default of its kind", () => {
  for (const [name, spec] of Object.entries(SETTINGS)) {
    assert.ok(spec.description.length > 10, name);
    if (spec.kind === "int" || spec.kind === "float") assert.equal(typeof spec.default, "number");
  }
});

Deno.test("--metrics-port turns metrics on; TLS needs a certificate and its key; one token source", () => {
  assert.equal(loadConfig({ env: {} }).config.METRICS_ENABLED, false);
  const metrics = loadConfig({ args: ["--metrics-port", "0"], env: {} }).config;
  assert.equal(metrics.METRICS_ENABLED, true);
  assert.equal(metrics.METRICS_PORT, 0);
  assert.equal(metrics.METRICS_HOST, "127.0.0.1");
  assert.equal(
    loadConfig({ env: { KVSTORE_METRICS_PORT: "9100" } }).config.METRICS_ENABLED,
    true,
  );
  assert.throws(
    () => loadConfig({ args: ["--tls-key", "k.pem"], env: {} }),
    /TLS needs both TLS_CERT and TLS_KEY; only TLS_KEY is set/,
  );
  assert.throws(
    () => loadConfig({ args: ["--auth-token", "a", "--auth-token-file", "f"], env: {} }),
    /AUTH_TOKEN or AUTH_TOKEN_FILE, not both/,
  );
  assert.equal(SETTINGS.AUTH_TOKEN.secret, true);
  assert.throws(
    () => loadConfig({ args: ["--auth-max-failures", "0"], env: {} }),
    /AUTH_MAX_FAILURES: 0 is below the minimum 1/,
  );
});

Deno.test("output and memory bounds must fit together", () => {
  assert.throws(
    () =>
      loadConfig({
        args: [
          "--output-buffer-soft-limit-bytes",
          "2048",
          "--output-buffer-hard-limit-bytes",
          "1024",
        ],
      }),
    /OUTPUT_BUFFER_HARD_LIMIT_BYTES: 1024 is below OUTPUT_BUFFER_SOFT_LIMIT_BYTES 2048/,
  );
  assert.throws(
    () => loadConfig({ args: ["--max-client-memory-bytes", String(2 ** 20)] }),
    /MAX_CLIENT_MEMORY_BYTES: 1048576 is below MAX_REQUEST_BYTES/,
  );
  const { config } = loadConfig({ args: [] });
  assert.ok(config.OUTPUT_BUFFER_SOFT_LIMIT_BYTES <= config.OUTPUT_BUFFER_HARD_LIMIT_BYTES);
  assert.ok(config.MAX_REQUEST_BYTES <= config.MAX_CLIENT_MEMORY_BYTES);
});
