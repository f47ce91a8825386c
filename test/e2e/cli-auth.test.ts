// The authentication flags through the real CLI (src/cli.ts in a child process):
//
//   $ smtp-bridge serve --users FILE --auth ldap://127.0.0.1:PORT/BASE?mail --auth http://svc:PW@127.0.0.1:PORT/auth?token=T \
//       --config FILE (its auth: [{ type: "ldap", bindDn, bindPasswordFile }] completes the LDAP URL)
//   ... auth backends htpasswd FILE -> ldap ldap://127.0.0.1:PORT base dc=example,dc=com -> http http://****@127.0.0.1:PORT/****?token=****; mechanisms PLAIN LOGIN; ...
//   C: AUTH PLAIN (a user of each backend)   S: 235 2.7.0
//
//   $ smtp-bridge check-config --auth ftp://x                  -> exit 2, "Invalid config: auth[0]: ..."
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { type Runtime, runCli, spawnCli } from "../support/runtimes.ts"
import { type Slapd, slapdAvailable, startSlapd } from "../support/slapd.ts"
import { connect } from "../support/SmtpClient.ts"
import { needTool } from "../support/tools.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")

const auth = async (port: number, user: string, password: string): Promise<string> => {
  const c = await connect(port)
  try {
    expect(await c.read()).toMatch(/^220 /)
    await c.command("EHLO client.test")
    return await c.command(`AUTH PLAIN ${b64(`\0${user}\0${password}`)}`)
  } finally {
    c.close()
  }
}

describe.skipIf(!needTool("slapd", slapdAvailable()))("serve --users --auth ldap://... --auth http://...", () => {
  let slapd: Slapd
  let service: http.Server
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-cli-auth-"))
  let args: Array<string>

  beforeAll(async () => {
    slapd = await startSlapd([{ uid: "alice", password: "alice-pw", mail: ["alice@example.com"] }])
    service = http.createServer((req, res) => {
      let body = ""
      req.on("data", (c: Buffer) => void (body += c.toString("utf8")))
      req.on("end", () => {
        const { username, password } = JSON.parse(body) as { username: string; password: string }
        if (req.headers.authorization !== `Basic ${Buffer.from("svc:svc-secret-pw").toString("base64")}`) return void res.writeHead(400).end()
        if (username === "dave" && password === "dave-pw") return void res.writeHead(200).end(JSON.stringify({ identity: "dave" }))
        res.writeHead(username === "dave" ? 401 : 404).end()
      })
    })
    await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve))
    fs.writeFileSync(path.join(dir, "users"), `carol:${await hashPassword("carol-pw", 4)}\n`)
    fs.writeFileSync(path.join(dir, "ldap-pw"), `${slapd.servicePassword}\n`)
    const config = path.join(dir, "smtp-bridge.config.ts")
    fs.writeFileSync(config, `export default {
  auth: [{ type: "ldap", bindDn: ${JSON.stringify(slapd.serviceDn)}, bindPasswordFile: ${JSON.stringify(path.join(dir, "ldap-pw"))} }]
}
`)
    args = [
      "--config", config,
      "--listen", "127.0.0.1:0",
      "--hostname", "bridge.test",
      "--allow-insecure-auth",
      "--maildir", path.join(dir, "mail"),
      "--users", path.join(dir, "users"),
      "--auth", `ldap://127.0.0.1:${slapd.port}/${slapd.base}?mail`,
      "--auth", `http://svc:svc-secret-pw@127.0.0.1:${(service.address() as AddressInfo).port}/auth?token=url-token-123`
    ]
  }, 30_000)
  afterAll(async () => {
    await slapd?.stop()
    await new Promise((resolve) => service?.close(resolve))
  })

  it.each<Runtime>(["bun", "deno"])("under %s: names the backends and mechanisms at start-up without secrets, and each one's user gets 235 2.7.0", async (runtime) => {
    const cli = await spawnCli(runtime, ["serve", "--log-level", "debug", ...args])
    try {
      const [line, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+).*/, 30_000)
      expect(line).toContain(
        `auth backends htpasswd ${path.join(dir, "users")} -> ldap ldap://127.0.0.1:${slapd.port} base ${slapd.base} -> http http://****@127.0.0.1:`
      )
      expect(line).toMatch(/\/\*\*\*\*\?token=\*\*\*\*; mechanisms PLAIN LOGIN; cache off/)
      expect(await auth(Number(port), "carol", "carol-pw")).toMatch(/^235 2\.7\.0 /)
      expect(await auth(Number(port), "alice@example.com", "alice-pw")).toMatch(/^235 2\.7\.0 /)
      expect(await auth(Number(port), "dave", "dave-pw")).toMatch(/^235 2\.7\.0 /)
      expect(await auth(Number(port), "dave", "wrong")).toMatch(/^535 5\.7\.8 /)
    } finally {
      await cli.kill()
    }
    // One debug line per check, naming backend, user and result: never a password or the URL's secrets.
    expect(cli.output()).toMatch(/auth: htpasswd: user carol: accepted in \d+ ms/)
    expect(cli.output()).toMatch(/auth: ldap: user alice@example\.com: accepted in \d+ ms/)
    expect(cli.output()).toMatch(/auth: http: user dave: invalid in \d+ ms/)
    expect(cli.output()).not.toMatch(/svc-secret-pw|url-token-123|alice-pw|carol-pw|dave-pw|wrong/)
  }, 60_000)

  it("check-config says which backends and mechanisms are on", async () => {
    const r = await runCli(["check-config", ...args, "--auth", "dovecot:///run/dovecot/auth-client",
      "--oauth-jwks", "https://idp.example/keys?sig=jwks-sig", "--oauth-issuer", "https://idp.example/", "--oauth-audience", "smtp.example"])
    expect(r.code, r.output).toBe(0)
    expect(r.stdout).toMatch(
      /^config ok: .*AUTH 1 user \(insecure allowed\); auth backends htpasswd .* -> ldap .* -> http .* -> dovecot unix:\/run\/dovecot\/auth-client -> oauth https:\/\/idp\.example\/\*\*\*\*\?sig=\*\*\*\* issuer https:\/\/idp\.example\/; mechanisms PLAIN LOGIN Dovecot's OAUTHBEARER XOAUTH2; cache off;/
    )
    expect(r.output).not.toMatch(/svc-secret-pw|url-token-123|jwks-sig/)
  })
})

describe("check-config refuses a bad backend with one line naming the field (exit 2)", () => {
  it.each([
    ["an unknown scheme", ["--auth", "ftp://127.0.0.1/"], /^Invalid config: auth\[0\]: expected an auth backend \(a backend URL: dovecot:\/\/\/PATH, .*\), got "ftp:\/\/127\.0\.0\.1\/" \(flags\)$/],
    ["an LDAP URL with a bind password", ["--auth", "ldap://cn=admin:hunter2@127.0.0.1/dc=example,dc=com"], /^Invalid config: auth\[0\]: expected an auth backend \(an LDAP URL without user or password .*\), got "ldap:\/\/\*\*\*\*@127\.0\.0\.1\/dc=example,dc=com" \(flags\)$/],
    ["an LDAP URL without a base", ["--auth", "ldap://127.0.0.1"], /^Invalid config: auth\[0\]\.base: /],
    ["an LDAP scope of base", ["--auth", "ldap://127.0.0.1/dc=x?uid?base"], /^Invalid config: auth\[0\]: expected an auth backend \(an LDAP URL whose scope is sub or one\)/],
    ["a Dovecot URL with a query", ["--auth", "dovecot://127.0.0.1:12345/?secret=x"], /^Invalid config: auth\[0\]: expected an auth backend \(dovecot:\/\/\/PATH \(a unix socket\) or dovecot:\/\/HOST:PORT/],
    ["--oauth-jwks without an issuer", ["--oauth-jwks", "https://idp.example/keys", "--oauth-audience", "smtp"], /^Invalid config: auth\[0\]\.issuer: /],
    ["a JWKS URL over plain HTTP", ["--oauth-jwks", "http://idp.example/keys", "--oauth-issuer", "i", "--oauth-audience", "a"], /^Invalid config: auth\[0\]\.jwksUrl: /],
    ["backends without TLS", ["--auth", "http://127.0.0.1/auth"], /^Invalid config: tls: expected \{ cert, key \} so that AUTH can be offered/]
  ])("%s", async (_, flags, line) => {
    const insecure = flags.includes("http://127.0.0.1/auth") ? [] : ["--allow-insecure-auth"]
    const r = await runCli(["check-config", ...insecure, ...flags])
    expect(r.code, r.output).toBe(2)
    const lines = r.stderr.trim().split("\n")
    expect(lines, r.stderr).toHaveLength(1)
    expect(lines[0]).toMatch(line)
    expect(r.output).not.toContain("hunter2")
  })

  it("lists --auth and the --oauth-* flags in serve --help", async () => {
    const r = await runCli(["serve", "--help"])
    expect(r.stdout).toMatch(/--auth URL \.\.\. +Authentication backend, in order after --users: dovecot:\/\/\/SOCKET/)
    expect(r.stdout).toMatch(/--oauth-jwks URL +OAUTHBEARER and XOAUTH2/)
  })
})
