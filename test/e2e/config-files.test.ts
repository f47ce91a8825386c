// Start-up and `check-config` through the real CLI under Bun: every file the config names is
// loaded and checked, and a problem is one line naming the field and the file (exit 2) rather
// than `config ok` followed by an OpenSSL error at the first client; a bridge that would refuse
// everyone says so when it starts.
//
//   $ smtp-bridge check-config --tls-cert cert.pem --tls-key missing.pem
//   Invalid config: tls.key: missing.pem: cannot read it (ENOENT: ...)          exit 2
//   $ smtp-bridge check-config --tls-cert key.pem --tls-key cert.pem            (swapped)
//   Invalid config: tls.cert: key.pem: a PEM certificate expected (...)        exit 2
//   $ smtp-bridge serve --listen 127.0.0.1:0                                    (no --users, no --trust)
//   WARN no users and no trusted networks: every message will be refused; try --trust 127.0.0.1/32 or --users FILE
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { testCertificate } from "../support/certs.ts"
import { run } from "../support/exec.ts"
import { bunBinary, denoBinary, projectRoot, spawnCli } from "../support/runtimes.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-config-files-"))
const file = (name: string, content: string): string => {
  const p = path.join(dir, name)
  fs.writeFileSync(p, content)
  return p
}

/** `smtp-bridge ARGS` under Bun, to its end. */
const cli = async (args: ReadonlyArray<string>) =>
  run(await bunBinary(), [path.join(projectRoot, "src", "cli.ts"), ...args], { env: { NO_COLOR: "1" }, cwd: dir, timeoutMs: 30_000 })

const base = ["--listen", "127.0.0.1:0", "--trust", "127.0.0.1/32", "--maildir", path.join(dir, "mail")]

/** check-config ARGS exits 2 with exactly one line on stderr, which is returned. */
const refused = async (args: ReadonlyArray<string>): Promise<string> => {
  const r = await cli(["check-config", ...base, ...args])
  expect(r.stdout).not.toContain("config ok")
  expect(r.code, r.stderr).toBe(2)
  const lines = r.stderr.trimEnd().split("\n")
  expect(lines).toHaveLength(1)
  return lines[0]!
}

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe("config errors say where and what", () => {
  // Line 4 lacks the comma after line 3: the error is at line 4, column 3.
  const broken = () =>
    file("broken.config.ts", 'export default {\n  listen: ["127.0.0.1:0"],\n  hostname: "x.example"\n  trust: ["127.0.0.1/32"]\n}\n')

  it("gives the line and column of a syntax error in the config file under Bun", async () => {
    const config = broken()
    const r = await cli(["check-config", "--config", config])
    expect(r.code).toBe(2)
    expect(r.stderr.trimEnd()).toMatch(/^Invalid config: config: cannot load .*broken\.config\.ts: line 4, column 3: /)
  })

  it("gives the line and column of a syntax error in the config file under Deno", async () => {
    const config = broken()
    const r = await run(await denoBinary(), ["run", "-A", "--config", path.join(projectRoot, "deno.json"), path.join(projectRoot, "src", "cli.ts"), "check-config", "--config", config], { env: { NO_COLOR: "1" }, cwd: dir, timeoutMs: 60_000 })
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr.trimEnd()).toMatch(/^Invalid config: config: cannot load .*broken\.config\.ts: line 4, column 3: /)
  })

  it("names the tls parameter of a relay URL and the values it allows (?tls=require), hiding the password", async () => {
    const line = await refused(["--relay", "smtp://me:hunter2@127.0.0.1:25?tls=require"])
    expect(line).toMatch(/^Invalid config: relay: /)
    expect(line).toContain('the tls parameter must be required, opportunistic or none, not "require"')
    expect(line).not.toContain("hunter2")
  })

  it("names the parameter in a transport's URL in the config file too", async () => {
    const config = file("relay.config.ts", 'export default {\n  trust: ["127.0.0.1/32"],\n  transports: { main: { type: "smtp", url: "smtp://127.0.0.1:25?tls=require" } },\n  defaultTransport: "main"\n}\n')
    const r = await cli(["check-config", "--config", config])
    expect(r.code, r.stderr).toBe(2)
    expect(r.stderr.trimEnd()).toMatch(
      /^Invalid config: transports\.main\.url: expected an smtp:\/\/ or smtps:\/\/ URL \(the tls parameter must be required, opportunistic or none, not "require"\)/
    )
  })
})

describe("check-config loads every file the config names", () => {
  const { cert, key } = testCertificate()
  const otherKey = path.join(dir, "other-key.pem")
  execFileSync("openssl", ["genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", otherKey], { stdio: "ignore", timeout: 20_000 })
  const rsaKey = path.join(dir, "dkim.pem")
  execFileSync("openssl", ["genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024", "-out", rsaKey], { stdio: "ignore", timeout: 20_000 })

  it("says config ok for a certificate with its own key, a users file and a DKIM key that parse", async () => {
    const users = file("users.htpasswd", `alice:${await hashPassword("pw", 4)}\n`)
    const r = await cli(["check-config", ...base, "--tls-cert", cert, "--tls-key", key, "--users", users, "--dkim-sign", `example.com:s1:${rsaKey}`])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^config ok: .*TLS on; AUTH 1 user;/)
  })

  it("refuses a missing TLS key, naming tls.key and the file (exit 2)", async () => {
    const missing = path.join(dir, "missing-key.pem")
    expect(await refused(["--tls-cert", cert, "--tls-key", missing])).toMatch(
      new RegExp(`^Invalid config: tls\\.key: ${missing}: cannot read it \\(ENOENT`)
    )
  })

  it("refuses a swapped certificate and key, naming tls.cert and the file that holds no certificate", async () => {
    expect(await refused(["--tls-cert", key, "--tls-key", cert])).toMatch(
      new RegExp(`^Invalid config: tls\\.cert: ${key}: a PEM certificate expected`)
    )
  })

  it("refuses a key that is not the certificate's, naming both files", async () => {
    expect(await refused(["--tls-cert", cert, "--tls-key", otherKey])).toBe(
      `Invalid config: tls.key: ${otherKey}: is not the private key of the certificate in ${cert} (tls.cert)`
    )
  })

  it("refuses a missing DKIM key file, naming dkimSign.keys[0].keyFile", async () => {
    const missing = path.join(dir, "missing-dkim.pem")
    expect(await refused(["--dkim-sign", `example.com:s1:${missing}`])).toMatch(
      new RegExp(`^Invalid config: dkimSign\\.keys\\[0\\]\\.keyFile: ${missing}: cannot read it`)
    )
  })

  it("refuses a DKIM key file that holds no private key (a certificate), naming the field and the file", async () => {
    expect(await refused(["--dkim-sign", `example.com:s1:${cert}`])).toMatch(
      new RegExp(`^Invalid config: dkimSign\\.keys\\[0\\]\\.keyFile: ${cert}: a PEM RSA or Ed25519 private key expected`)
    )
  })

  it("refuses a relay's missing CA file (ca=), naming the field and the file, never the relay's password", async () => {
    const missing = path.join(dir, "missing-ca.pem")
    const line = await refused(["--relay", `smtp://me:hunter2@127.0.0.1:25?ca=${missing}`])
    expect(line).toMatch(new RegExp(`^Invalid config: transports\\.default\\.url \\(ca=\\): ${missing}: cannot read it`))
    expect(line).not.toContain("hunter2")
  })

  it("refuses a users file with a bad line, naming users, the file and the line", async () => {
    const users = file("bad.htpasswd", "alice-without-a-hash\n")
    expect(await refused(["--users", users, "--allow-insecure-auth"])).toMatch(/^Invalid config: users: .*bad\.htpasswd:1/)
  })
})

describe("serve checks the same files at start-up", () => {
  it("exits 2 on a swapped certificate and key with the line check-config gives, before listening", async () => {
    const { cert, key } = testCertificate()
    const r = await cli(["serve", ...base, "--tls-cert", key, "--tls-key", cert])
    expect(r.code, r.stdout + r.stderr).toBe(2)
    expect(r.stdout).not.toContain("listening on")
    expect(r.stderr.trimEnd()).toMatch(new RegExp(`^Invalid config: tls\\.cert: ${key}: a PEM certificate expected`))
  })
})

describe("serve warns when it would refuse every message", () => {
  const warning = "no users and no trusted networks: every message will be refused; try --trust 127.0.0.1/32 or --users FILE"

  it("warns at start-up without --users and --trust", async () => {
    const serve = await spawnCli("bun", ["serve", "--listen", "127.0.0.1:0", "--maildir", path.join(dir, "mail"), "--log-format", "json"])
    try {
      const [line] = await serve.waitForLog(/^\{.*no users and no trusted networks.*$/m, 30_000)
      expect(JSON.parse(line)).toMatchObject({ level: "WARN", message: warning })
    } finally {
      await serve.kill()
    }
  })

  it("does not warn with --trust", async () => {
    const serve = await spawnCli("bun", ["serve", ...base, "--log-format", "json"])
    try {
      await serve.waitForLog(/listening on 127\.0\.0\.1:\d+/, 30_000)
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(serve.output()).not.toContain("no users and no trusted networks")
    } finally {
      await serve.kill()
    }
  })
})
