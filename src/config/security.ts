/**
 * The security settings: client tokens, failed-authentication bounds, unauthenticated
 * connections, TLS, and the replication token and CA.
 *
 * One part of the settings table that `src/config.ts` assembles into `SETTINGS` and `Config`. A new
 * security setting goes here: a field of {@link SecurityConfig} and its row in {@link
 * SECURITY_SETTINGS} (the row's place is its place in `--help` and in docs/configuration.md).
 *
 * @module
 */
import { GIB, KIB, type SettingSpec } from "./setting.ts";

/** The security part of the typed settings of one node. */
export interface SecurityConfig {
  AUTH_TOKEN: string;
  AUTH_TOKEN_FILE: string;
  AUTH_MAX_FAILURES: number;
  AUTH_FAILURE_WINDOW_SECONDS: number;
  AUTH_FAILURE_DELAY_MS: number;
  AUTH_MAX_TRACKED_PEERS: number;
  AUTH_TIMEOUT_SECONDS: number;
  MAX_UNAUTHENTICATED_CONNECTIONS: number;
  MAX_UNAUTHENTICATED_REQUEST_BYTES: number;
  TLS_CERT: string;
  TLS_KEY: string;
  REPLICATION_TOKEN: string;
  REPLICATION_TOKEN_FILE: string;
  REPLICATION_TLS_CA: string;
}

/** The security rows of the settings table, in `--help` order. */
export const SECURITY_SETTINGS: { readonly [name in keyof SecurityConfig]: SettingSpec } = {
  AUTH_TOKEN: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<token>",
    secret: true,
    description:
      "Token clients must send with AUTH <token> before any command but PING, AUTH and QUIT " +
      "(empty: no authentication). Prefer AUTH_TOKEN_FILE or the environment: flags show in ps.",
  },
  AUTH_TOKEN_FILE: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<file>",
    description:
      "File holding AUTH_TOKEN (one trailing newline ignored), e.g. a systemd credential.",
  },
  AUTH_MAX_FAILURES: {
    kind: "int",
    default: 10,
    group: "security",
    min: 1,
    max: 1_000_000,
    description:
      "Failed AUTH (or PROVE) attempts one client address may make per window and be answered at " +
      "once; each further failure is answered after AUTH_FAILURE_DELAY_MS and closes its " +
      "connection. A correct token is always accepted at once.",
  },
  AUTH_FAILURE_WINDOW_SECONDS: {
    kind: "float",
    default: 60,
    group: "security",
    min: 0.001,
    max: 86_400,
    description: "Length of the window in which AUTH_MAX_FAILURES are counted.",
  },
  AUTH_FAILURE_DELAY_MS: {
    kind: "int",
    default: 1000,
    group: "security",
    min: 0,
    max: 60_000,
    description:
      "Delay before the reply to a failed AUTH from an address past AUTH_MAX_FAILURES (the " +
      "connection then closes, so guesses cost a connection each; PostgreSQL's auth_delay).",
  },
  AUTH_MAX_TRACKED_PEERS: {
    kind: "int",
    default: 10_000,
    group: "security",
    min: 1,
    max: 10_000_000,
    description:
      "Client addresses whose failed AUTH attempts are remembered; past it the oldest is forgotten.",
  },
  AUTH_TIMEOUT_SECONDS: {
    kind: "float",
    default: 10,
    group: "security",
    min: 0.01,
    max: 3600,
    description:
      "With a token set, a connection that has not authenticated within this time is closed.",
  },
  MAX_UNAUTHENTICATED_CONNECTIONS: {
    kind: "int",
    default: 1000,
    group: "security",
    min: 1,
    max: 1_000_000,
    description:
      "With a token set, connections not yet authenticated (at most MAX_CONNECTIONS); a new " +
      "connection past it, or past MAX_CONNECTIONS, closes the oldest unauthenticated one of the " +
      "address holding the most, so they can never lock out a client or a master that " +
      "authenticates.",
  },
  MAX_UNAUTHENTICATED_REQUEST_BYTES: {
    kind: "int",
    default: 16 * KIB,
    group: "security",
    min: 256,
    max: 2 * GIB,
    description:
      "With a token set, the largest request a connection may send before it authenticated " +
      "(Redis limits these too); larger ones are refused and skipped.",
  },
  TLS_CERT: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<file>",
    description:
      "PEM certificate chain: with TLS_KEY, clients (and masters replicating here) must use TLS.",
  },
  TLS_KEY: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<file>",
    description: "PEM private key of TLS_CERT.",
  },
  REPLICATION_TOKEN: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<token>",
    secret: true,
    description:
      "Token of the replication stream: a replica accepts REPLICATE only on a connection that " +
      "sent AUTH with it, and a master sends it to its replicas (empty: AUTH_TOKEN is used).",
  },
  REPLICATION_TOKEN_FILE: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<file>",
    description: "File holding REPLICATION_TOKEN, e.g. a systemd credential.",
  },
  REPLICATION_TLS_CA: {
    kind: "string",
    default: "",
    group: "security",
    placeholder: "<file>",
    description:
      "PEM CA a master trusts for its replicas' certificates: set, it replicates over TLS (the " +
      "replicas serve TLS_CERT).",
  },
};
