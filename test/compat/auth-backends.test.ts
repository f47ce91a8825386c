/**
 * auth-ldap and auth-http listed in a config file's `plugins`, in the real CLI under Bun, Deno
 * and Node: the runtime's own module resolution finds ldapts, the runtime's fetch reaches the
 * service (with the URL's credentials as Basic authentication), and both backends answer AUTH
 * (a slapd and an HTTP service started by the test on loopback).
 */
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { projectRoot, runtimes, spawnCli } from "../support/runtimes.ts"
import { type Slapd, slapdAvailable, startSlapd } from "../support/slapd.ts"
import { connect } from "../support/SmtpClient.ts"
import { needTool } from "../support/tools.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")

describe.skipIf(!needTool("slapd", slapdAvailable()))("auth-ldap and auth-http in the CLI", () => {
  let slapd: Slapd
  let service: http.Server
  let config: string
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-auth-backends-"))

  beforeAll(async () => {
    slapd = await startSlapd([{ uid: "alice", password: "alice-pw", mail: ["alice@example.com"] }])
    service = http.createServer((req, res) => {
      let body = ""
      req.on("data", (c: Buffer) => void (body += c.toString("utf8")))
      req.on("end", () => {
        const { username, password } = JSON.parse(body) as { username: string; password: string }
        // The URL's user and password arrive as Basic authentication (Node's fetch refuses them in the URL).
        if (req.headers.authorization !== `Basic ${Buffer.from("svc:svc-pw").toString("base64")}`) return void res.writeHead(400).end()
        if (username === "dave" && password === "dave-pw") return void res.writeHead(200).end(JSON.stringify({ identity: "dave" }))
        res.writeHead(username === "dave" ? 401 : 404).end()
      })
    })
    await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve))
    fs.writeFileSync(path.join(dir, "ldap-pw"), `${slapd.servicePassword}\n`)
    const plugins = path.join(projectRoot, "plugins")
    config = path.join(dir, "smtp-bridge.config.ts")
    fs.writeFileSync(config, `
import { authHttp } from ${JSON.stringify(path.join(plugins, "auth-http", "index.ts"))}
import { authLdap } from ${JSON.stringify(path.join(plugins, "auth-ldap", "index.ts"))}

export default {
  listen: ["127.0.0.1:0"],
  hostname: "bridge.test",
  allowInsecureAuth: true,
  maildir: ${JSON.stringify(path.join(dir, "mail"))},
  plugins: [
    authLdap({ url: "ldap://localhost:${slapd.port}", startTls: true, caFile: ${JSON.stringify(slapd.caFile)}, base: "${slapd.base}",
      bindDn: "${slapd.serviceDn}", bindPasswordFile: ${JSON.stringify(path.join(dir, "ldap-pw"))} }),
    authHttp({ url: "http://svc:svc-pw@127.0.0.1:${(service.address() as AddressInfo).port}/auth" })
  ]
}
`)
  }, 60_000)
  afterAll(async () => {
    await slapd?.stop()
    await new Promise((resolve) => service?.close(resolve))
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it.each(runtimes)("authenticates a directory user and an HTTP user under %s: 235, and a wrong password 535", async (runtime) => {
    const cli = await spawnCli(runtime, ["serve", "--config", config], { cwd: dir })
    try {
      const [, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 60_000)
      const auth = async (user: string, password: string) => {
        const c = await connect(Number(port))
        try {
          expect(await c.read()).toMatch(/^220 /)
          await c.command("EHLO client.test")
          const reply = await c.command(`AUTH PLAIN ${b64(`\0${user}\0${password}`)}`)
          expect(await c.command("QUIT")).toMatch(/^221 /)
          return reply
        } finally {
          c.close()
        }
      }
      expect(await auth("alice@example.com", "alice-pw")).toMatch(/^235 2\.7\.0 /)
      expect(await auth("dave", "dave-pw")).toMatch(/^235 2\.7\.0 /)
      expect(await auth("alice@example.com", "wrong")).toMatch(/^535 5\.7\.8 /)
    } finally {
      await cli.kill()
    }
  })
})
