/**
 * auth-http against a real loopback HTTP service started by the test, which verifies the
 * request's signature, through real SMTP AUTH PLAIN and LOGIN sessions with the test SmtpClient.
 */
import { createHmac, timingSafeEqual } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { authHttp } from "../../plugins/auth-http/index.ts"
import type { OptionsInput } from "../../plugins/auth-http/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { type Client, connect } from "../support/SmtpClient.ts"
import * as Resolve from "../../src/config/Resolve.ts"

// As check-config and start-up report a bad option: one line naming the plugin and the option.
const problem = (input: unknown): Promise<string> =>
  Effect.runPromise(Effect.flip(Resolve.resolve({ plugins: [authHttp(input as never)] }, "test.config.ts"))).then((e) => e.message)

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const secret = "a-shared-hmac-key-for-tests"
const wideThrottle = { authFailures: { perIp: "1000/hour", perUser: "1000/hour", delay: "1 millis", maxDelay: "1 millis" } } as const

interface Seen {
  readonly path: string
  readonly body: Record<string, unknown>
  readonly signed: boolean
}

/** The service: verifies the signature (400 when wrong), then answers by path and credentials. */
const startService = async () => {
  const seen: Array<Seen> = []
  const held: Array<http.ServerResponse> = []
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const raw = Buffer.concat(chunks)
      const timestamp = String(req.headers["x-smtp-bridge-timestamp"] ?? "")
      const expected = Buffer.from(`v1=${createHmac("sha256", secret).update(`${timestamp}.`).update(raw).digest("hex")}`)
      const got = Buffer.from(String(req.headers["x-smtp-bridge-signature"] ?? ""))
      const signed = got.length === expected.length && timingSafeEqual(got, expected) && Math.abs(Date.now() / 1000 - Number(timestamp)) < 60
      const path = new URL(req.url ?? "/", "http://service.test").pathname
      const body = JSON.parse(raw.toString("utf8") || "{}") as Record<string, unknown>
      seen.push({ path, body, signed })
      if (!signed) return void res.writeHead(400).end("bad signature")
      if (path.endsWith("/basic")) {
        const ok = req.headers.authorization === `Basic ${Buffer.from("svc:p@ss wörd").toString("base64")}`
        return void res.writeHead(ok ? 200 : 401, { "content-type": "application/json" }).end(JSON.stringify({ identity: "alice" }))
      }
      const json = (status: number, value: unknown) => void res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value))
      if (path.endsWith("/500")) return void res.writeHead(500).end("boom")
      if (path.endsWith("/redirect")) return void res.writeHead(307, { location: `http://127.0.0.1:${port()}/auth/followed?token=leaked-token` }).end()
      if (path.endsWith("/slow")) return void held.push(res)
      if (path.endsWith("/drip")) {
        // Headers at once, then one byte of body every 100 ms: never done before the timeout.
        res.writeHead(200, { "content-type": "application/json" })
        held.push(res)
        const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write(" ")), 100)
        return
      }
      if (path.endsWith("/huge")) {
        res.writeHead(200, { "content-type": "application/json" })
        res.write(`{"identity":"alice","senders":["${"a".repeat(64 * 1024)}`)
        return void res.end(`"]}`)
      }
      if (path.endsWith("/badjson")) return void res.writeHead(200, { "content-type": "application/json" }).end("{identity: alice")
      if (path.endsWith("/crlf")) return json(200, { identity: "alice\r\nX-Injected: yes" })
      if (body.username === "alice" && body.password === "alice-pw") return json(200, { identity: "alice@example.com", senders: ["alice@example.com", "alias@example.org"] })
      if (body.username === "alice") return json(401, { error: "bad password" })
      if (body.username === "locked") return json(403, { error: "locked" })
      return json(404, { error: "no such user" })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = () => (server.address() as AddressInfo).port
  return {
    port: port(),
    seen,
    stop: () => {
      held.forEach((r) => r.destroy())
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

const session = async (port: number): Promise<Client> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/AUTH PLAIN LOGIN/)
  return c
}

const authPlain = async (port: number, user: string, password: string) => {
  const c = await session(port)
  return { c, reply: await c.command(`AUTH PLAIN ${b64(`\0${user}\0${password}`)}`) }
}

const authLogin = async (port: number, user: string, password: string) => {
  const c = await session(port)
  expect(await c.command("AUTH LOGIN")).toBe("334 VXNlcm5hbWU6")
  expect(await c.command(b64(user))).toBe("334 UGFzc3dvcmQ6")
  return { c, reply: await c.command(b64(password)) }
}

describe("auth-http against a loopback HTTP service", () => {
  let service: Awaited<ReturnType<typeof startService>>
  let bridge: TestBridge
  const options = (path: string, extra: Partial<OptionsInput> = {}): OptionsInput => ({
    url: `http://127.0.0.1:${service.port}${path}`,
    secret,
    timeout: "1 second",
    ...extra
  })
  const withBridge = async (opts: OptionsInput, run: (b: TestBridge) => Promise<void>) => {
    const b = await startBridge({ allowInsecureAuth: true, rateLimit: wideThrottle, plugins: [authHttp(opts)] })
    try {
      await run(b)
    } finally {
      await b.stop()
    }
  }

  beforeAll(async () => {
    service = await startService()
    bridge = await startBridge({ allowInsecureAuth: true, rateLimit: wideThrottle, plugins: [authHttp(options("/auth"))] })
  })
  afterAll(async () => {
    await bridge?.stop()
    await service?.stop()
  })

  it.each([["PLAIN", authPlain], ["LOGIN", authLogin]] as const)("accepts on 200 { identity } with AUTH %s: 235 2.7.0, the request signed", async (mechanism, auth) => {
    const { c, reply } = await auth(bridge.port, "alice", "alice-pw")
    expect(reply).toMatch(/^235 2\.7\.0 /)
    c.close()
    expect(service.seen.at(-1)).toEqual({
      path: "/auth",
      signed: true,
      body: { username: "alice", password: "alice-pw", mechanism, client: "127.0.0.1", tls: false }
    })
  })

  it("refuses on 401 with 535 5.7.8", async () => {
    const { c, reply } = await authPlain(bridge.port, "alice", "wrong")
    expect(reply).toMatch(/^535 5\.7\.8 /)
    c.close()
  })

  it("refuses an empty password with 535 5.7.8 without asking the service", async () => {
    const before = service.seen.length
    const { c, reply } = await authLogin(bridge.port, "alice", "")
    expect(reply).toMatch(/^535 5\.7\.8 /)
    c.close()
    expect(service.seen.length).toBe(before)
  })

  it("refuses on 403 with 535 5.7.8", async () => {
    const { c, reply } = await authPlain(bridge.port, "locked", "whatever")
    expect(reply).toMatch(/^535 5\.7\.8 /)
    c.close()
  })

  it("continues on 404 (an unknown user), so that with no other backend the bridge answers 535 5.7.8", async () => {
    const { c, reply } = await authPlain(bridge.port, "nobody", "whatever")
    expect(reply).toMatch(/^535 5\.7\.8 /)
    c.close()
  })

  it("lets the user send as the senders of the answer, and refuses another address with 553 5.7.1", async () => {
    const { c, reply } = await authPlain(bridge.port, "alice", "alice-pw")
    expect(reply).toMatch(/^235 /)
    expect(await c.command("MAIL FROM:<bob@example.com>")).toMatch(/^553 5\.7\.1 /)
    expect(await c.command("MAIL FROM:<alias@example.org>")).toMatch(/^250 /)
    expect(await c.command("RCPT TO:<carol@example.net>")).toMatch(/^250 /)
    expect(await c.command("DATA")).toMatch(/^354 /)
    expect(await c.command("From: <bob@example.com>\r\n\r\nhi\r\n.")).toMatch(/^550 5\.7\.1 Header From rejected/)
    c.close()
  })

  it("answers 454 4.7.0 when the service cannot verify the signature (a wrong key)", async () => {
    await withBridge(options("/auth", { secret: "another-key-of-16-chars" }), async (b) => {
      const { c, reply } = await authPlain(b.port, "alice", "alice-pw")
      expect(reply).toMatch(/^454 4\.7\.0 /)
      c.close()
      expect(service.seen.at(-1)?.signed).toBe(false)
    })
  })

  it.each([
    ["a 500", "/500"],
    ["a 200 with invalid JSON", "/badjson"],
    ["a 200 whose identity holds CR LF", "/crlf"],
    ["a body over maxResponseBytes", "/huge"]
  ])("answers 454 4.7.0 on %s", async (_, path) => {
    await withBridge(options(path), async (b) => {
      const { c, reply } = await authPlain(b.port, "alice", "alice-pw")
      expect(reply).toMatch(/^454 4\.7\.0 /)
      c.close()
    })
  })

  it("answers 454 4.7.0 on a redirect and never follows it (the password would go elsewhere)", async () => {
    await withBridge(options("/redirect"), async (b) => {
      const before = service.seen.length
      const { c, reply } = await authPlain(b.port, "alice", "alice-pw")
      expect(reply).toMatch(/^454 4\.7\.0 /)
      c.close()
      expect(service.seen.slice(before).map((s) => s.path)).toEqual(["/redirect"])
      const logs = JSON.stringify(b.logs())
      expect(logs).toContain("redirect")
      expect(logs).not.toContain("leaked-token")
    })
  })

  it("answers 454 4.7.0 after the timeout when the service never answers, while other sessions go on", async () => {
    await withBridge(options("/slow", { timeout: "1 second" }), async (b) => {
      const started = Date.now()
      const waiting = [authPlain(b.port, "alice", "alice-pw"), authPlain(b.port, "alice", "alice-pw")]
      const bystander = await session(b.port)
      expect(await bystander.command("NOOP", 500)).toMatch(/^250 /)
      bystander.close()
      for (const { c, reply } of await Promise.all(waiting)) {
        expect(reply).toMatch(/^454 4\.7\.0 /)
        c.close()
      }
      expect(Date.now() - started).toBeLessThan(4000)
    })
  })

  it("answers 454 4.7.0 after the timeout when the service sends its body one byte at a time", async () => {
    await withBridge(options("/drip", { timeout: "1 second" }), async (b) => {
      const started = Date.now()
      const { c, reply } = await authPlain(b.port, "alice", "alice-pw")
      expect(reply).toMatch(/^454 4\.7\.0 /)
      c.close()
      expect(Date.now() - started).toBeLessThan(3000)
    })
  })

  it("runs behind the AUTH throttle without any rate-limit configuration", async () => {
    const b = await startBridge({ allowInsecureAuth: true, plugins: [authHttp(options("/auth"))] })
    try {
      const started = JSON.stringify(b.logs())
      expect(started).toMatch(/rate-limit\[[^\]]*auth[^\]]*\][^"]*auth-http\[auth\]/)
      expect(started).toContain("auth failures on")
    } finally {
      await b.stop()
    }
  })

  it("never logs the password or the secrets of the URL", async () => {
    await withBridge(options("/t/path-token-123/500?key=query-token-456"), async (b) => {
      const { c, reply } = await authPlain(b.port, "alice", "alice-pw")
      expect(reply).toMatch(/^454 4\.7\.0 /)
      c.close()
      const logs = JSON.stringify(b.logs())
      expect(logs).toContain("auth-http")
      for (const secretText of ["alice-pw", "path-token-123", "query-token-456", secret]) expect(logs).not.toContain(secretText)
    })
  })

  it("sends the URL's user and password as HTTP Basic authentication, never logging the password: 235", async () => {
    await withBridge(options("", { url: `http://svc:p%40ss%20w%C3%B6rd@127.0.0.1:${service.port}/basic` }), async (b) => {
      const { c, reply } = await authPlain(b.port, "alice", "alice-pw")
      expect(reply).toMatch(/^235 /)
      c.close()
      expect(JSON.stringify(b.logs())).not.toMatch(/p%40ss|p@ss/)
    })
  })

  it("answers 454 4.7.0 when nothing listens, naming no secret of the URL", async () => {
    const closed = http.createServer()
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    await withBridge(options("", { url: `http://127.0.0.1:${port}/hook?token=query-token-789` }), async (b) => {
      const { c, reply } = await authPlain(b.port, "alice", "alice-pw")
      expect(reply).toMatch(/^454 4\.7\.0 /)
      c.close()
      expect(JSON.stringify(b.logs())).not.toContain("query-token-789")
    })
  })

  it.each([
    ["a URL that is no http(s) URL", { url: "ftp://127.0.0.1/" }, /\(auth-http\)\.url: expected .*an http:\/\/ or https:\/\/ URL/],
    ["a short secret", { url: "http://127.0.0.1/", secret: "short" }, /\(auth-http\)\.secret: /],
    ["an unknown option", { url: "http://127.0.0.1/", retries: 3 }, /\(auth-http\)\.retries: /],
    ["a timeout over a minute", { url: "http://127.0.0.1/", timeout: "90 seconds" }, /\(auth-http\)\.timeout: expected .*a duration of at most 1 minute/]
  ])("refuses %s in the config check, naming the option", async (_, input, message) => {
    const line = await problem(input)
    expect(line).toMatch(/^Invalid config: plugins\[0\] \(auth-http\)\./)
    expect(line).toMatch(message)
  })

  it("never repeats a secret given with the wrong type in the error", async () => {
    const line = await problem({ url: "http://127.0.0.1/", secret: 1234567890123456789 })
    expect(line).toMatch(/\(auth-http\)\.secret: /)
    expect(line).not.toContain("1234567890123456789")
  })
})
