/**
 * The config's `auth: [...]` list through real SMTP sessions: htpasswd, LDAP (a real slapd,
 * given as an RFC 4516 URL completed by the entry's bind options) and HTTP (a loopback service
 * that counts the checks it gets) chained in one bridge; then the result cache (`authCache`)
 * in front of the HTTP backend, its attacks (another password, user-name look-alikes, a backend
 * that hangs) and the per-backend metrics on /metrics.
 */
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { type Slapd, slapdAvailable, startSlapd } from "../support/slapd.ts"
import { connect } from "../support/SmtpClient.ts"
import { needTool } from "../support/tools.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const wideThrottle = { authFailures: { perIp: "1000/hour", perUser: "1000/hour", delay: "1 millis", maxDelay: "1 millis" } } as const

/** An HTTP auth service whose passwords the test changes, counting the checks per user; `hang` holds every answer. */
const startService = async () => {
  const passwords = new Map<string, string>()
  const asked: Array<string> = []
  const held: Array<http.ServerResponse> = []
  const state = { hang: false }
  const server = http.createServer((req, res) => {
    let body = ""
    req.on("data", (c: Buffer) => void (body += c.toString("utf8")))
    req.on("end", () => {
      const { username, password } = JSON.parse(body) as { username: string; password: string }
      asked.push(username)
      if (state.hang) return void held.push(res)
      const known = passwords.get(username)
      if (known === undefined) return void res.writeHead(404).end()
      if (known !== password) return void res.writeHead(401).end()
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ identity: username, senders: [`${username}@apps.example`] }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`,
    passwords,
    asked,
    state,
    stop: () => {
      held.forEach((r) => r.destroy())
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

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

/** AUTH, then MAIL FROM the address given: the senders a cached acceptance grants must still apply. */
const authThenMail = async (port: number, user: string, password: string, from: string): Promise<[string, string]> => {
  const c = await connect(port)
  try {
    await c.read()
    await c.command("EHLO client.test")
    const authReply = await c.command(`AUTH PLAIN ${b64(`\0${user}\0${password}`)}`)
    return [authReply, await c.command(`MAIL FROM:<${from}>`)]
  } finally {
    c.close()
  }
}

const metrics = async (bridge: TestBridge): Promise<string> => (await fetch(`http://127.0.0.1:${bridge.running.admin!.port}/metrics`)).text()

/** The value of the series of `name` whose labels include all of `labels`; 0 when absent. */
const sample = (text: string, name: string, labels: Record<string, string>): number => {
  const line = text.split("\n").find((l) =>
    l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))
  )
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1))
}

describe.skipIf(!needTool("slapd", slapdAvailable()))("auth: [htpasswd, ldap URL, http] in one bridge", () => {
  let slapd: Slapd
  let service: Awaited<ReturnType<typeof startService>>
  let bridge: TestBridge

  beforeAll(async () => {
    slapd = await startSlapd([{ uid: "alice", password: "alice-pw", mail: ["alice@example.com"] }])
    service = await startService()
    service.passwords.set("dave", "dave-pw")
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-auth-config-"))
    fs.writeFileSync(path.join(dir, "users"), `carol:${await hashPassword("carol-pw", 4)}\n`)
    fs.writeFileSync(path.join(dir, "ldap-pw"), slapd.servicePassword)
    bridge = await startBridge({
      allowInsecureAuth: true,
      rateLimit: wideThrottle,
      auth: [
        { type: "htpasswd", file: path.join(dir, "users") },
        { type: "ldap", url: `ldap://127.0.0.1:${slapd.port}/${slapd.base}?mail`, bindDn: slapd.serviceDn, bindPasswordFile: path.join(dir, "ldap-pw") },
        service.url
      ]
    })
  }, 30_000)
  afterAll(async () => {
    await bridge?.stop()
    await slapd?.stop()
    await service?.stop()
  })

  it.each([
    ["the htpasswd file", "carol", "carol-pw"],
    ["the directory", "alice@example.com", "alice-pw"],
    ["the HTTP service", "dave", "dave-pw"]
  ])("authenticates a user of %s: 235 2.7.0", async (_, user, password) => {
    expect(await auth(bridge.port, user, password)).toMatch(/^235 2\.7\.0 /)
  })

  it("lets the first backend that knows the user decide: a wrong password is 535 5.7.8 and no later backend is asked", async () => {
    service.asked.length = 0
    expect(await auth(bridge.port, "alice@example.com", "wrong")).toMatch(/^535 5\.7\.8 /)
    expect(await auth(bridge.port, "carol", "wrong")).toMatch(/^535 5\.7\.8 /)
    expect(service.asked).toEqual([])
  })

  it("refuses a user no backend knows with 535 5.7.8, after asking each", async () => {
    service.asked.length = 0
    expect(await auth(bridge.port, "mallory", "anything")).toMatch(/^535 5\.7\.8 /)
    expect(service.asked).toEqual(["mallory"])
  })

  it("says which backends run in its start-up line, without secrets", () => {
    const line = bridge.logs().map((l) => String(l.message)).find((m) => m.startsWith("smtp-bridge listening"))
    expect(line).toContain(`auth backends htpasswd ${""}`)
    expect(line).toMatch(new RegExp(`-> ldap ldap://127\\.0\\.0\\.1:${slapd.port} base ${slapd.base} -> http http://127\\.0\\.0\\.1:\\d+/\\*\\*\\*\\*; mechanisms PLAIN LOGIN; cache off`))
  })
})

describe("authCache in front of the HTTP backend", () => {
  let service: Awaited<ReturnType<typeof startService>>
  let bridge: TestBridge
  const askedFor = (user: string) => service.asked.filter((u) => u === user).length

  beforeAll(async () => {
    service = await startService()
    bridge = await startBridge({
      allowInsecureAuth: true,
      admin: "127.0.0.1:0",
      rateLimit: wideThrottle,
      authCache: { ttl: "1 minute", negativeTtl: "1 minute" },
      auth: [{ type: "http", url: service.url, timeout: "1 second" }]
    })
  })
  afterAll(async () => {
    await bridge?.stop()
    await service?.stop()
  })

  it("accepts a user and password it accepted before without asking the backend, senders included (235, then 250 for MAIL)", async () => {
    service.passwords.set("dave", "pw-1")
    // The registry is the process's: other bridges of this file count under the same labels.
    const before = await metrics(bridge)
    const grew = (text: string, name: string, labels: Record<string, string>) => sample(text, name, labels) - sample(before, name, labels)
    expect(await auth(bridge.port, "dave", "pw-1")).toMatch(/^235 2\.7\.0 /)
    expect(askedFor("dave")).toBe(1)
    const [authReply, mail] = await authThenMail(bridge.port, "dave", "pw-1", "dave@apps.example")
    expect(authReply).toMatch(/^235 2\.7\.0 /)
    expect(mail).toMatch(/^250 /)
    expect(askedFor("dave")).toBe(1)
    const text = await metrics(bridge)
    expect(grew(text, "smtp_bridge_auth_cache_total", { backend: "http", result: "hit" })).toBe(1)
    expect(grew(text, "smtp_bridge_auth_cache_total", { backend: "http", result: "miss" })).toBe(1)
    expect(grew(text, "smtp_bridge_auth_backend_requests_total", { backend: "http", result: "accepted" })).toBe(1)
    expect(grew(text, "smtp_bridge_auth_backend_duration_seconds_count", { backend: "http" })).toBe(1)
  })

  it("never lets another password log in from the cache: the backend is asked and refuses, 535 5.7.8", async () => {
    const before = askedFor("dave")
    expect(await auth(bridge.port, "dave", "pw-1x")).toMatch(/^535 5\.7\.8 /)
    expect(await auth(bridge.port, "dave", "pw-")).toMatch(/^535 5\.7\.8 /)
    expect(askedFor("dave")).toBe(before + 2)
  })

  it("gives user names that only look alike no cached answer: each goes to the backend", async () => {
    service.asked.length = 0
    for (const lookalike of ["Dave", "dave ", " dave", "dav\u0435"]) {
      expect(await auth(bridge.port, lookalike, "pw-1")).toMatch(/^535 5\.7\.8 /)
    }
    expect(service.asked).toEqual(["Dave", "dave ", " dave", "dav\u0435"])
  })

  it("never lets a cached login act for another identity: AUTH PLAIN with an authzid is the backend's to refuse, 535 5.7.8", async () => {
    service.passwords.set("gina", "gina-pw")
    expect(await auth(bridge.port, "gina", "gina-pw")).toMatch(/^235 2\.7\.0 /)
    const c = await connect(bridge.port)
    try {
      await c.read()
      await c.command("EHLO client.test")
      expect(await c.command(`AUTH PLAIN ${b64("dave\0gina\0gina-pw")}`)).toMatch(/^535 5\.7\.8 /)
    } finally {
      c.close()
    }
    // auth-http refuses acting for another identity itself, without a request.
    expect(askedFor("gina")).toBe(1)
  })

  it("refuses a password changed in the backend at once once the new one logged in (235 for the new, then 535 for the old)", async () => {
    service.passwords.set("dave", "pw-2")
    const before = askedFor("dave")
    expect(await auth(bridge.port, "dave", "pw-2")).toMatch(/^235 2\.7\.0 /)
    expect(await auth(bridge.port, "dave", "pw-1")).toMatch(/^535 5\.7\.8 /)
    expect(askedFor("dave")).toBe(before + 2)
  })

  it("refuses a repeated wrong password from the cache without locking the user out (535, 535, then 235)", async () => {
    service.passwords.set("erin", "erin-pw")
    expect(await auth(bridge.port, "erin", "guess")).toMatch(/^535 5\.7\.8 /)
    expect(await auth(bridge.port, "erin", "guess")).toMatch(/^535 5\.7\.8 /)
    expect(askedFor("erin")).toBe(1)
    expect(await auth(bridge.port, "erin", "erin-pw")).toMatch(/^235 2\.7\.0 /)
    expect(askedFor("erin")).toBe(2)
    const text = await metrics(bridge)
    expect(sample(text, "smtp_bridge_auth_cache_total", { backend: "http", result: "negative_hit" })).toBeGreaterThanOrEqual(1)
    expect(sample(text, "smtp_bridge_auth_backend_failures_total", { backend: "http", reason: "invalid" })).toBeGreaterThanOrEqual(1)
  })

  it("keeps cached users in while the backend hangs; others get 454 4.7.0 and nothing is cached for them", async () => {
    const before = await metrics(bridge)
    service.state.hang = true
    try {
      expect(await auth(bridge.port, "dave", "pw-2")).toMatch(/^235 2\.7\.0 /)
      expect(await auth(bridge.port, "frank", "frank-pw")).toMatch(/^454 4\.7\.0 /)
      service.state.hang = false
      service.passwords.set("frank", "frank-pw")
      expect(await auth(bridge.port, "frank", "frank-pw")).toMatch(/^235 2\.7\.0 /)
      const text = await metrics(bridge)
      const unavailable = { backend: "http", reason: "unavailable" }
      expect(sample(text, "smtp_bridge_auth_backend_failures_total", unavailable) - sample(before, "smtp_bridge_auth_backend_failures_total", unavailable)).toBe(1)
    } finally {
      service.state.hang = false
    }
  })
})
