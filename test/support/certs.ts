/**
 * A self-signed certificate for `localhost` (SAN DNS:localhost, IP:127.0.0.1, IP:::1), made once per
 * test process with the `openssl` CLI and removed when the process exits.
 *
 * @example
 * const { cert, key } = testCertificate()
 * const bridge = await spawnCli("bun", ["serve", "--tls-cert", cert, "--tls-key", key])
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as tls from "node:tls"

export interface TestCertificate {
  /** Path of the PEM certificate. */
  readonly cert: string
  /** Path of the PEM private key (unencrypted). */
  readonly key: string
  /** The temporary directory holding both. */
  readonly dir: string
  readonly certPem: string
  readonly keyPem: string
}

let cached: TestCertificate | undefined

export const testCertificate = (): TestCertificate => {
  if (cached !== undefined) return cached
  const dir = mkdtempSync(join(tmpdir(), "smtp-bridge-cert-"))
  const cert = join(dir, "cert.pem")
  const key = join(dir, "key.pem")
  execFileSync("openssl", [
    "req", "-x509", "-nodes", "-days", "7",
    "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
    "-keyout", key, "-out", cert,
    "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
  ], { stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 })
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }))
  cached = { cert, key, dir, certPem: readFileSync(cert, "utf8"), keyPem: readFileSync(key, "utf8") }
  return cached
}

/** The SHA-256 fingerprint of the certificate a TLS listener on 127.0.0.1:`port` serves now. */
export const servedFingerprint = (port: number): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256)
      socket.end()
    })
    socket.once("error", reject)
  })
