/**
 * Authentication backends chained in order: htpasswd (`users`), then auth-ldap against a real
 * slapd, then auth-http against a loopback service. A backend that does not know the user
 * continues; the first that knows them decides; when none does, the bridge answers 535 5.7.8.
 */
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { authHttp } from "../../plugins/auth-http/index.ts"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { authLdap } from "../../plugins/auth-ldap/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { type Slapd, slapdAvailable, startSlapd } from "../support/slapd.ts"
import { connect } from "../support/SmtpClient.ts"
import { needTool } from "../support/tools.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")

describe.skipIf(!needTool("slapd", slapdAvailable()))("htpasswd, then LDAP, then HTTP", () => {
  let slapd: Slapd
  let service: http.Server
  let bridge: TestBridge
  const asked: Array<string> = []

  beforeAll(async () => {
    slapd = await startSlapd([{ uid: "alice", password: "alice-pw", mail: ["alice@example.com"] }])
    service = http.createServer((req, res) => {
      let body = ""
      req.on("data", (c: Buffer) => void (body += c.toString("utf8")))
      req.on("end", () => {
        const { username, password } = JSON.parse(body) as { username: string; password: string }
        asked.push(username)
        if (username === "dave" && password === "dave-pw") return void res.writeHead(200).end(JSON.stringify({ identity: "dave" }))
        res.writeHead(username === "dave" ? 401 : 404).end()
      })
    })
    await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve))
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-chain-"))
    fs.writeFileSync(path.join(dir, "users"), `carol:${await hashPassword("carol-pw", 4)}\n`)
    fs.writeFileSync(path.join(dir, "ldap-pw"), slapd.servicePassword)
    bridge = await startBridge({
      allowInsecureAuth: true,
      users: path.join(dir, "users"),
      rateLimit: { authFailures: { perIp: "1000/hour", perUser: "1000/hour", delay: "1 millis", maxDelay: "1 millis" } },
      plugins: [
        authLdap({ url: `ldap://127.0.0.1:${slapd.port}`, base: slapd.base, bindDn: slapd.serviceDn, bindPasswordFile: path.join(dir, "ldap-pw") }),
        authHttp({ url: `http://127.0.0.1:${(service.address() as AddressInfo).port}/auth` })
      ]
    })
  }, 30_000)
  afterAll(async () => {
    await bridge?.stop()
    await slapd?.stop()
    await new Promise((resolve) => service?.close(resolve))
  })

  const auth = async (user: string, password: string): Promise<string> => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      await c.command("EHLO client.test")
      return await c.command(`AUTH PLAIN ${b64(`\0${user}\0${password}`)}`)
    } finally {
      c.close()
    }
  }

  it.each([
    ["the htpasswd file", "carol", "carol-pw"],
    ["the directory", "alice@example.com", "alice-pw"],
    ["the HTTP service", "dave", "dave-pw"]
  ])("authenticates a user of %s: 235 2.7.0", async (_, user, password) => {
    expect(await auth(user, password)).toMatch(/^235 2\.7\.0 /)
  })

  it("refuses a wrong password with 535 5.7.8 in the backend that knows the user, asking no later one", async () => {
    asked.length = 0
    expect(await auth("alice@example.com", "wrong")).toMatch(/^535 5\.7\.8 /)
    expect(await auth("carol", "wrong")).toMatch(/^535 5\.7\.8 /)
    expect(asked).toEqual([])
    expect(await auth("dave", "wrong")).toMatch(/^535 5\.7\.8 /)
    expect(asked).toEqual(["dave"])
  })

  it("refuses a user no backend knows with 535 5.7.8", async () => {
    expect(await auth("mallory", "anything")).toMatch(/^535 5\.7\.8 /)
  })
})
