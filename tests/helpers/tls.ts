/**
 * Throwaway TLS material for tests: a CA and a server certificate for 127.0.0.1/localhost,
 * made with the openssl command (Debian's, installed by .ci/run when missing).
 *
 * @module
 */
import { withTempDir } from "./temp_dir.ts";

/** Paths and PEM texts of a test CA and a server certificate signed by it. */
export interface TestCertificates {
  dir: string;
  caCertPath: string;
  caCertPem: string;
  serverCertPath: string;
  serverCertPem: string;
  serverKeyPath: string;
  serverKeyPem: string;
}

/** True when `openssl` can be run. */
export function hasOpenssl(): boolean {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const result = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!result.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(result.stderr)}`);
  }
}

/**
 * Runs `body` with a fresh CA and a server certificate valid for 127.0.0.1 and localhost, in a
 * temporary directory removed afterwards.
 */
export function withTestCertificates<T>(
  body: (certs: TestCertificates) => Promise<T>,
): Promise<T> {
  return withTempDir(async (dir) => body(await makeTestCertificates(dir)), "kvstore-tls-");
}

/** Creates a CA and a server certificate valid for 127.0.0.1 and localhost in `dir`. */
async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=kvstore test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
  ], dir);
  await openssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
  ], dir);
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" +
      "basicConstraints=CA:FALSE\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "server.ext",
    "-out",
    "server.crt",
  ], dir);
  return {
    dir,
    caCertPath: `${dir}/ca.crt`,
    caCertPem: await Deno.readTextFile(`${dir}/ca.crt`),
    serverCertPath: `${dir}/server.crt`,
    serverCertPem: await Deno.readTextFile(`${dir}/server.crt`),
    serverKeyPath: `${dir}/server.key`,
    serverKeyPem: await Deno.readTextFile(`${dir}/server.key`),
  };
}
