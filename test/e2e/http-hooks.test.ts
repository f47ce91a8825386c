// HTTP hooks (plugins/http-hooks) against a loopback HTTP server: the signed JSON request of each
// stage matches docs/schemas/hook-request.json, the answers docs/schemas/hook-response.json;
// the answer's verdict is the reply and its modifications are what gets delivered. Redirects are
// never followed; a slow, failing or off-schema hook gets the default action.
//
//   (hook at rcptTo answers {"action":"reject","code":550,"enhanced":"5.1.1","text":"No such user"})
//   C: RCPT TO:<nobody@example.net>
//   S: 550 5.1.1 No such user
//   (hook at data answers {"action":"accept","modifications":{"addRecipients":["carol@example.net"],...}})
//   C: ... .
//   S: 250 2.0.0 Ok: queued as ...   (delivered to bob and carol, from bounces@example.org, X-Hooked added)
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { createHmac } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { httpHooks } from "../../plugins/http-hooks/index.ts"
import type * as Wire from "../../plugins/http-hooks/Wire.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { validate } from "../support/jsonSchema.ts"
import { runCli, spawnCli } from "../support/runtimes.ts"
import { connect } from "../support/SmtpClient.ts"

const schemas = path.join(import.meta.dirname, "..", "..", "docs", "schemas")
const requestSchema = JSON.parse(fs.readFileSync(path.join(schemas, "hook-request.json"), "utf8"))
const responseSchema = JSON.parse(fs.readFileSync(path.join(schemas, "hook-response.json"), "utf8"))
const secret = "a-test-key-of-32-characters-long"

interface Seen {
  readonly url: string
  readonly body: Wire.Request
  readonly signed: boolean
}

/** The answer for a request, by stage and what the request holds; `undefined` means "never answer". */
type Answerer = (request: Wire.Request, url: string) => { readonly status?: number; readonly headers?: Record<string, string>; readonly body?: unknown } | undefined

const startHookServer = async (answer: Answerer) => {
  const seen: Array<Seen> = []
  const pending = new Set<http.ServerResponse>()
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const raw = Buffer.concat(chunks)
      const timestamp = String(req.headers["x-smtp-bridge-timestamp"])
      const expected = `v1=${createHmac("sha256", secret).update(`${timestamp}.`).update(raw).digest("hex")}`
      const body = raw.length > 0 ? JSON.parse(raw.toString("utf8")) : {}
      seen.push({ url: req.url ?? "", body, signed: req.headers["x-smtp-bridge-signature"] === expected })
      const a = answer(body, req.url ?? "")
      if (a === undefined) {
        pending.add(res)
        return
      }
      res.writeHead(a.status ?? 200, { "content-type": "application/json", ...a.headers })
      res.end(typeof a.body === "string" ? a.body : JSON.stringify(a.body ?? { action: "continue" }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as { port: number }).port
  return {
    url: (p: string) => `http://127.0.0.1:${port}${p}`,
    seen,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const r of pending) r.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

const answers: Answerer = (request, url) => {
  if (url.startsWith("/redirect")) return { status: 302, headers: { location: "/followed" } }
  if (url === "/followed") return { body: { action: "reject", text: "followed a redirect" } }
  if (request.stage === "mailFrom" && request.envelope?.mailFrom === "later@example.org") return { body: { action: "tempfail", text: "Greylisted, come back later" } }
  if (request.stage === "rcptTo" && request.recipient === "nobody@example.net") {
    return { body: { action: "reject", code: 550, enhanced: "5.1.1", text: "No such user" } }
  }
  if (request.stage !== "data") return { body: { action: "continue" } }
  const subject = request.message?.headers.find((h) => h.name === "Subject")?.value
  switch (subject) {
    case "modify":
      return {
        body: {
          action: "accept",
          modifications: {
            addHeaders: [{ name: "X-Hooked", value: "yes" }],
            removeHeaders: ["X-Secret"],
            addRecipients: ["carol@example.net"],
            removeRecipients: ["dave@example.net"],
            setSender: "bounces@example.org"
          }
        }
      }
    case "inject":
      return { body: { action: "accept", modifications: { addHeaders: [{ name: "X-A: b\r\nBcc", value: "victim@example.net" }] } } }
    case "off-schema":
      return { body: { action: "maybe" } }
    case "discard":
      return { body: { action: "discard", reason: "test" } }
    case "slow":
      return undefined
    default:
      return { body: { action: "continue" } }
  }
}

const transaction = async (port: number, options: { readonly from?: string; readonly to?: ReadonlyArray<string>; readonly subject: string }) => {
  const c = await connect(port)
  try {
    await c.read()
    await c.command("EHLO client.test")
    const mail = await c.command(`MAIL FROM:<${options.from ?? "alice@example.org"}>`)
    if (!mail.startsWith("250")) return mail
    for (const r of options.to ?? ["bob@example.net"]) {
      const reply = await c.command(`RCPT TO:<${r}>`)
      if (!reply.startsWith("250")) return reply
    }
    await c.command("DATA")
    return await c.command(`Subject: ${options.subject}\r\nX-Secret: s3cret\r\n\r\nhello hooks\r\n.`, 20_000)
  } finally {
    c.close()
  }
}

describe("HTTP hooks at mailFrom, rcptTo and data", () => {
  let hooks: Awaited<ReturnType<typeof startHookServer>>
  let bridge: TestBridge
  beforeAll(async () => {
    hooks = await startHookServer(answers)
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      plugins: [httpHooks({
        hooks: [{ stage: "mailFrom", url: hooks.url("/mail") }, { stage: "rcptTo", url: hooks.url("/rcpt") }, { stage: "data", url: hooks.url("/data") }],
        secret,
        timeout: "1 second"
      })]
    })
  })
  afterAll(async () => {
    await bridge?.stop()
    await hooks?.stop()
  })

  it("refuses a recipient with the hook's code and text: S: 550 5.1.1 No such user", async () => {
    expect(await transaction(bridge.port, { to: ["nobody@example.net"], subject: "x" })).toBe("550 5.1.1 No such user")
  })

  it("defers MAIL when the hook says tempfail: S: 451 4.7.1 Greylisted, come back later", async () => {
    expect(await transaction(bridge.port, { from: "later@example.org", subject: "x" })).toBe("451 4.7.1 Greylisted, come back later")
  })

  it("applies the data hook's modifications: S: 250; delivered to the edited envelope with the edited header", async () => {
    const before = bridge.delivered().length
    expect(await transaction(bridge.port, { to: ["bob@example.net", "dave@example.net"], subject: "modify" })).toMatch(/^250 2\.0\.0 /)
    const delivered = bridge.delivered().slice(before).map((b) => b.toString("utf8"))
    expect(delivered).toHaveLength(1)
    const message = delivered[0]!
    expect(message).toMatch(/^Return-Path: <bounces@example\.org>\r\n/)
    expect([...message.matchAll(/^Delivered-To: (.*)\r$/gm)].map((m) => m[1])).toEqual(["bob@example.net", "carol@example.net"])
    expect(message).toContain("\r\nX-Hooked: yes\r\n")
    expect(message).not.toContain("X-Secret")
  })

  it("sends signed requests that match docs/schemas/hook-request.json, with the message at data", () => {
    expect(hooks.seen.length).toBeGreaterThan(3)
    for (const s of hooks.seen) {
      expect(s.signed).toBe(true)
      expect(validate(requestSchema, s.body as never)).toEqual([])
    }
    const data = hooks.seen.find((s) => s.body.stage === "data" && JSON.stringify(s.body).includes("modify"))!.body
    expect(data.envelope).toMatchObject({ mailFrom: "alice@example.org", recipients: ["bob@example.net", "dave@example.net"] })
    expect(Buffer.from(data.message!.raw!, "base64").toString("utf8")).toMatch(/Subject: modify\r\nX-Secret: s3cret\r\n\r\nhello hooks\r\n$/)
    const rcpt = hooks.seen.find((s) => s.body.stage === "rcptTo")!.body
    expect(rcpt.session).toMatchObject({ remoteAddress: "127.0.0.1", helo: "client.test", tls: null, user: null })
  })

  it("every answer the test server gives matches docs/schemas/hook-response.json, and an off-schema one does not", () => {
    for (const body of [{ action: "continue" }, { action: "reject", code: 550, enhanced: "5.1.1", text: "No such user" }, answers({ ...hooks.seen[0]!.body, stage: "data", message: { size: 0, headers: [{ name: "Subject", value: "modify" }] } }, "/data")!.body]) {
      expect(validate(responseSchema, body as never)).toEqual([])
    }
    expect(validate(responseSchema, { action: "maybe" })).not.toEqual([])
    expect(validate(responseSchema, { action: "reject", code: 250 })).not.toEqual([])
  })

  it("treats a header with CR LF, an off-schema answer and a silent hook as failures: S: 451 4.7.1", async () => {
    const before = bridge.delivered().length
    expect(await transaction(bridge.port, { subject: "inject" })).toBe("451 4.7.1 Service unavailable - try again later")
    expect(await transaction(bridge.port, { subject: "off-schema" })).toBe("451 4.7.1 Service unavailable - try again later")
    const started = Date.now()
    expect(await transaction(bridge.port, { subject: "slow" })).toBe("451 4.7.1 Service unavailable - try again later")
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(bridge.delivered().length).toBe(before)
  })

  it("discards when the hook says so: S: 250, nothing delivered", async () => {
    const before = bridge.delivered().length
    expect(await transaction(bridge.port, { subject: "discard" })).toMatch(/^250 2\.0\.0 /)
    expect(bridge.delivered().length).toBe(before)
  })
})

describe("an HTTP hook that redirects", () => {
  it("is never followed: the default action answers (S: 451 4.7.1, or 250 with accept)", async () => {
    const hooks = await startHookServer(answers)
    const strict = await startBridge({ trust: ["127.0.0.0/8"], plugins: [httpHooks({ hooks: [{ stage: "data", url: hooks.url("/redirect?token=sup3rs3cret") }] })] })
    const lenient = await startBridge({
      trust: ["127.0.0.0/8"],
      plugins: [httpHooks({ hooks: [{ stage: "data", url: hooks.url("/redirect") }], defaultAction: "accept" })]
    })
    try {
      expect(await transaction(strict.port, { subject: "x" })).toBe("451 4.7.1 Service unavailable - try again later")
      expect(await transaction(lenient.port, { subject: "x" })).toMatch(/^250 2\.0\.0 /)
      expect(hooks.seen.map((s) => s.url)).toEqual(["/redirect?token=sup3rs3cret", "/redirect"])
      // The warning names the hook, never the token in its URL.
      const logged = JSON.stringify(strict.logs())
      expect(logged).toMatch(/http-hooks: .*redirect.*never followed/)
      expect(logged).not.toContain("sup3rs3cret")
    } finally {
      await strict.stop()
      await lenient.stop()
      await hooks.stop()
    }
  })
})

describe("--hook STAGE=URL (real CLI under Bun)", () => {
  it("posts each message to the hook: S: the hook's 550 5.1.1 at RCPT", async () => {
    const hooks = await startHookServer(answers)
    const cli = await spawnCli("bun", ["serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--hook", `rcptTo=${hooks.url("/rcpt")}`])
    try {
      const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      expect(await transaction(port, { to: ["nobody@example.net"], subject: "x" })).toBe("550 5.1.1 No such user")
      expect(hooks.seen.map((s) => s.body.stage)).toEqual(["rcptTo"])
    } finally {
      await cli.kill()
      await hooks.stop()
    }
  }, 40_000)

  it("check-config names a stage that does not exist: exit 2", async () => {
    const result = await runCli(["check-config", "--hook", "eom=http://127.0.0.1:9/x"])
    expect(result.code).toBe(2)
    expect(result.output).toMatch(/httpHooks\.hooks\[0\]\.stage/)
  }, 40_000)
})
