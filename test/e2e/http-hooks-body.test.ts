// HTTP hooks with `body: "url"`: the data request carries the header fields and a one-time URL of
// the plugin's own loopback listener, which serves the message (message/rfc822, Content-Length,
// streamed from the spill file) to one GET while the hook call is pending, and to nobody after.
//
//   (hook at data gets {"message":{"headers":[...],"body":{"url":"http://127.0.0.1:P/message/<token>","size":3145990}}})
//   (hook) GET /message/<token>   -> 200, message/rfc822, the 3 MB message as the bridge delivers it
//   (hook) GET /message/<token>   -> 404 (taken)         (hook answers {"action":"continue"})
//   S: 250 2.0.0 Ok: queued as ...
//   (anyone) GET /message/<token> -> 404 (the hook call has ended)
//
// And the attacker's side: guessed tokens, traversal and odd targets, HEAD and other methods,
// oversized and malformed request heads, more connections than allowed, a reader that never
// reads (cut when the hook call ends; the session never waits for it), unsigned fetches when
// signatures are required, and the listener gone with the bridge.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { createHash, createHmac } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import { Effect } from "effect"
import { httpHooks } from "../../plugins/http-hooks/index.ts"
import type * as Wire from "../../plugins/http-hooks/Wire.ts"
import { definePlugin, Verdict } from "../../src/index.ts"
import type { DataContext } from "../../src/index.ts"
import { startBridge, stripTrace, type TestBridge } from "../support/bridge.ts"
import { validate } from "../support/jsonSchema.ts"
import { connect } from "../support/SmtpClient.ts"

const requestSchema = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "..", "..", "docs", "schemas", "hook-request.json"), "utf8"))
const secret = "a-test-key-of-32-characters-long"

type Scenario = (request: Wire.Request) => Promise<unknown>

/** A hook service whose data answers come from the scenario of the running test. */
const startHookServer = async () => {
  const seen: Array<Wire.Request> = []
  let scenario: Scenario = () => Promise.resolve({ action: "continue" })
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Wire.Request
      seen.push(body)
      scenario(body).then(
        (answer) => {
          if (answer === undefined) return // never answers
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify(answer))
        },
        (error) => {
          res.writeHead(500)
          res.end(String(error))
        }
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}/data`,
    seen,
    set: (s: Scenario) => void (scenario = s),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

interface Answer {
  readonly status: number
  readonly head: string
  readonly headers: ReadonlyMap<string, string>
  readonly body: Buffer
}

/** Sends `text` as it is on a new connection and reads until the listener closes it. */
const raw = (url: string, text: string | Buffer): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const u = new URL(url)
    const socket = net.connect(Number(u.port), u.hostname)
    const chunks: Array<Buffer> = []
    socket.on("data", (c: Buffer) => chunks.push(c))
    socket.on("error", () => {})
    socket.setTimeout(20_000, () => reject(new Error("no end within 20 s")))
    socket.on("close", () => {
      const all = Buffer.concat(chunks)
      const end = all.indexOf("\r\n\r\n")
      const head = end === -1 ? all.toString("latin1") : all.subarray(0, end).toString("latin1")
      const headers = new Map(head.split("\r\n").slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()] as const))
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? 0), head, headers, body: end === -1 ? Buffer.alloc(0) : all.subarray(end + 4) })
    })
    socket.write(text)
  })

const get = (url: string, options: { readonly method?: string; readonly target?: string; readonly headers?: string } = {}) =>
  raw(url, `${options.method ?? "GET"} ${options.target ?? new URL(url).pathname} HTTP/1.1\r\nhost: hooks\r\n${options.headers ?? ""}\r\n`)

const signed = (url: string, at = Math.floor(Date.now() / 1000), target = new URL(url).pathname) =>
  `x-smtp-bridge-timestamp: ${at}\r\nx-smtp-bridge-signature: v1=${createHmac("sha256", secret).update(`${at}.${target}`).digest("hex")}\r\n`

/** A message of about `bytes` bytes: numbered lines, one of them starting with a dot. */
const bigMessage = (subject: string, bytes: number): string => {
  const lines = [`From: alice@example.org`, `To: bob@example.net`, `Subject: ${subject}`, ``, `.a line that starts with a dot`]
  for (let i = 0; lines.length * 80 < bytes; i++) lines.push(`line ${String(i).padStart(8, "0")} ${"x".repeat(64)}`)
  return lines.join("\r\n") + "\r\n"
}

/** One transaction; the reply to the final dot, and when it came. */
const send = async (port: number, message: string, timeoutMs = 30_000) => {
  const c = await connect(port)
  try {
    await c.read()
    await c.command("EHLO client.test")
    await c.command("MAIL FROM:<alice@example.org>")
    await c.command("RCPT TO:<bob@example.net>")
    expect(await c.command("DATA")).toMatch(/^354 /)
    c.send(message.replace(/^\./gm, "..") + ".\r\n")
    const reply = await c.read(timeoutMs)
    return { reply, at: Date.now() }
  } finally {
    c.close()
  }
}

const urlOf = (request: Wire.Request): string => request.message!.body!.url

describe("HTTP hooks with body: url", () => {
  let hooks: Awaited<ReturnType<typeof startHookServer>>
  let bridge: TestBridge
  beforeAll(async () => {
    hooks = await startHookServer()
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      plugins: [httpHooks({ hooks: [{ stage: "data", url: hooks.url }], timeout: "2 seconds", body: "url", bodyServer: { maxConnections: 4 } })]
    })
  })
  afterAll(async () => {
    await bridge?.stop()
    await hooks?.stop()
  })

  it("serves a 3 MB message at the body URL while the hook call is pending: 200, message/rfc822, the bytes delivered; 404 after", async () => {
    const fetched: Array<Answer> = []
    hooks.set(async (request) => {
      fetched.push(await get(urlOf(request)))
      fetched.push(await get(urlOf(request)))
      return { action: "continue" }
    })
    const message = bigMessage("big", 3 * 1024 * 1024)
    expect((await send(bridge.port, message)).reply).toMatch(/^250 2\.0\.0 /)
    const request = hooks.seen.at(-1)!
    expect(validate(requestSchema, request as never)).toEqual([])
    expect(request.message!.raw).toBeUndefined()
    expect(request.message!.headers.find((h) => h.name === "Subject")?.value).toBe("big")
    // 256 random bits in the path, base64url.
    expect(urlOf(request)).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/message\/[A-Za-z0-9_-]{43}$/)

    const [first, second] = fetched
    expect(first!.status).toBe(200)
    expect(first!.headers.get("content-type")).toBe("message/rfc822")
    expect(Number(first!.headers.get("content-length"))).toBe(request.message!.body!.size)
    expect(first!.body.byteLength).toBe(request.message!.body!.size)
    const delivered = Buffer.from(stripTrace(bridge.delivered().at(-1)!), "utf8")
    expect(createHash("sha256").update(first!.body).digest("hex")).toBe(createHash("sha256").update(delivered).digest("hex"))
    expect(first!.body.toString("utf8")).toBe(message)
    // One GET per URL: the second is refused even while the call is pending.
    expect(second!.status).toBe(404)
    // After the call: gone.
    expect((await get(urlOf(request))).status).toBe(404)
  }, 60_000)

  it("gives the URL to one of two concurrent GETs: one 200 with the whole message, one 404", async () => {
    let pair: Array<Answer> = []
    hooks.set(async (request) => {
      pair = await Promise.all([get(urlOf(request)), get(urlOf(request))])
      return { action: "continue" }
    })
    expect((await send(bridge.port, bigMessage("twice", 512 * 1024))).reply).toMatch(/^250 2\.0\.0 /)
    expect(pair.map((a) => a.status).sort()).toEqual([200, 404])
    expect(pair.find((a) => a.status === 200)!.body.byteLength).toBe(hooks.seen.at(-1)!.message!.body!.size)
  }, 60_000)

  it("answers only the exact path of a live token: guesses, traversal, odd targets and methods get 404, 405 or 400, and do not use it up", async () => {
    const results: Record<string, number> = {}
    let head: Answer | undefined
    let afterwards: Answer | undefined
    hooks.set(async (request) => {
      const url = urlOf(request)
      const target = new URL(url).pathname
      const token = target.slice("/message/".length)
      const flipped = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A")
      const tries: Record<string, Parameters<typeof get>[1]> = {
        "a token one character off": { target: `/message/${flipped}` },
        "a random token": { target: `/message/${Buffer.alloc(32, 7).toString("base64url")}` },
        "the token without its last character": { target: target.slice(0, -1) },
        "a trailing slash": { target: `${target}/` },
        "a query": { target: `${target}?x=1` },
        "a dot segment": { target: `/message/../message/${token}` },
        "a double slash": { target: `/${target}` },
        "percent-encoding": { target: `/%6Dessage/${token}` },
        "the prefix alone": { target: "/message/" },
        "../ to a file": { target: "/../../../../etc/passwd" },
        "POST": { method: "POST" },
        "PUT": { method: "PUT" },
        "DELETE": { method: "DELETE" },
        "OPTIONS": { method: "OPTIONS" },
        "lower-case get": { method: "get" },
        "an absolute target": { target: url },
        "a body": { headers: "content-length: 5\r\n" },
        "chunked": { headers: "transfer-encoding: chunked\r\n" },
        "a folded header": { headers: "x-a: b\r\n c\r\n" },
        "a header without a colon": { headers: "nonsense\r\n" }
      }
      for (const [name, options] of Object.entries(tries)) results[name] = (await get(url, options)).status
      results["an HTTP/0.9 request"] = (await raw(url, `GET ${target}\r\n\r\n`)).status
      results["a NUL in the target"] = (await raw(url, `GET ${target}\0 HTTP/1.1\r\n\r\n`)).status
      head = await get(url, { method: "HEAD" })
      afterwards = await get(url)
      return { action: "continue" }
    })
    expect((await send(bridge.port, bigMessage("probe", 100 * 1024))).reply).toMatch(/^250 2\.0\.0 /)
    expect(results).toEqual({
      "a token one character off": 404,
      "a random token": 404,
      "the token without its last character": 404,
      "a trailing slash": 404,
      "a query": 404,
      "a dot segment": 404,
      "a double slash": 404,
      "percent-encoding": 404,
      "the prefix alone": 404,
      "../ to a file": 404,
      "POST": 405,
      "PUT": 405,
      "DELETE": 405,
      "OPTIONS": 405,
      "lower-case get": 400,
      "an absolute target": 400,
      "a body": 400,
      "chunked": 400,
      "a folded header": 400,
      "a header without a colon": 400,
      "an HTTP/0.9 request": 400,
      "a NUL in the target": 400
    })
    const size = hooks.seen.at(-1)!.message!.body!.size
    // HEAD: the length, no body, and the URL still good for the GET.
    expect(head!.status).toBe(200)
    expect(Number(head!.headers.get("content-length"))).toBe(size)
    expect(head!.body.byteLength).toBe(0)
    expect(afterwards!.status).toBe(200)
    expect(afterwards!.body.byteLength).toBe(size)
  }, 60_000)

  it("refuses a request head over 8 KiB with 431 and closes a connection whose head never ends", async () => {
    let url = ""
    let big: Answer | undefined
    let huge: Answer | undefined
    hooks.set(async (request) => {
      url = urlOf(request)
      big = await get(url, { headers: `x-big: ${"a".repeat(9000)}\r\n` })
      huge = await raw(url, Buffer.concat([Buffer.from(`GET ${new URL(url).pathname} HTTP/1.1\r\n`), Buffer.alloc(1024 * 1024, "a")]))
      return { action: "continue" }
    })
    expect((await send(bridge.port, bigMessage("heads", 10 * 1024))).reply).toMatch(/^250 2\.0\.0 /)
    expect(big!.status).toBe(431)
    expect(huge!.status).toBe(431)
    // A head that never ends: closed after the head timeout (5 s), without an answer.
    const started = Date.now()
    const silent = await raw(url, "GET /message/x HTTP/1.1\r\nx-slow: 1\r\n")
    expect(silent.status).toBe(0)
    expect(Date.now() - started).toBeGreaterThan(4_000)
    expect(Date.now() - started).toBeLessThan(8_000)
  }, 60_000)

  it("closes connections past maxConnections (4) at once", async () => {
    const url = urlOf(hooks.seen.at(-1)!)
    const u = new URL(url)
    const open = await Promise.all(Array.from({ length: 4 }, () =>
      new Promise<net.Socket>((resolve) => {
        const s = net.connect(Number(u.port), u.hostname, () => resolve(s))
        s.on("error", () => {})
      })))
    try {
      // Give the listener time to count them.
      await new Promise((r) => setTimeout(r, 200))
      const started = Date.now()
      const refused = await get(url)
      expect(refused.status).toBe(0)
      expect(Date.now() - started).toBeLessThan(1_000)
    } finally {
      for (const s of open) s.destroy()
    }
    // Once they are gone, a request is answered again.
    await new Promise((r) => setTimeout(r, 200))
    expect((await get(url)).status).toBe(404)
  }, 30_000)

  it("never waits for a reader that does not read: S: 250 as soon as the hook answers, and the transfer is cut then", async () => {
    let reader: { readonly socket: net.Socket; readonly received: () => number; readonly closed: Promise<void> } | undefined
    hooks.set(async (request) => {
      const u = new URL(urlOf(request))
      const socket = net.connect(Number(u.port), u.hostname)
      socket.on("error", () => {})
      let received = 0
      const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()))
      socket.on("data", (c: Buffer) => {
        received += c.byteLength
        // Stops reading after the first bytes: the bridge's writes back up.
        socket.pause()
      })
      socket.write(`GET ${u.pathname} HTTP/1.1\r\n\r\n`)
      reader = { socket, received: () => received, closed }
      await new Promise((r) => setTimeout(r, 500))
      answered = Date.now()
      return { action: "continue" }
    })
    let answered = 0
    const { reply, at } = await send(bridge.port, bigMessage("stall", 16 * 1024 * 1024))
    expect(reply).toMatch(/^250 2\.0\.0 /)
    expect(at - answered).toBeLessThan(1_000)
    // Reading again, the reader gets what was already in the buffers, then the end: the bridge
    // stopped the transfer when the hook call ended, far short of the 16 MB announced.
    reader!.socket.on("data", () => reader!.socket.resume())
    reader!.socket.resume()
    const ended = await Promise.race([reader!.closed.then(() => "closed"), new Promise((r) => setTimeout(() => r("open"), 5_000))])
    reader!.socket.destroy()
    expect(ended).toBe("closed")
    expect(reader!.received()).toBeGreaterThan(0)
    expect(reader!.received()).toBeLessThan(hooks.seen.at(-1)!.message!.body!.size)
  }, 60_000)

  it("a reader that does not read and a hook that never answers: S: 451 4.7.1 within the hook timeout", async () => {
    let posted = 0
    hooks.set((request) => {
      posted = Date.now()
      const u = new URL(urlOf(request))
      const socket = net.connect(Number(u.port), u.hostname, () => socket.pause())
      socket.on("error", () => {})
      socket.write(`GET ${u.pathname} HTTP/1.1\r\n\r\n`)
      setTimeout(() => socket.destroy(), 10_000)
      return Promise.resolve(undefined)
    })
    const { reply, at } = await send(bridge.port, bigMessage("stall and hold", 8 * 1024 * 1024))
    expect(reply).toBe("451 4.7.1 Service unavailable - try again later")
    // The hook's timeout is 2 s.
    expect(at - posted).toBeLessThan(3_000)
  }, 60_000)
})

describe("HTTP hooks with body: url and bodyServer.requireSignature", () => {
  it("answers 403 to a fetch not signed with the secret (none, another path's, too old) and 200 to a signed one, of the message an earlier plugin edited; the listener goes with the bridge", async () => {
    const hooks = await startHookServer()
    // An editing plugin before the hooks: the URL serves the message as it left it.
    const editor = definePlugin({
      name: "editor",
      data: Effect.fn("editor.data")(function*({ edit }: DataContext) {
        edit.changeHeader("Subject", 1, "edited before the hook")
        const body = edit.replaceBody()
        yield* body.write(new TextEncoder().encode("the editor's body\r\n"))
        yield* body.end()
        return Verdict.Continue
      })
    })
    const bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      plugins: [editor, httpHooks({ hooks: [{ stage: "data", url: hooks.url }], secret, body: "url", bodyServer: { listen: "127.0.0.1:0", requireSignature: true } })]
    })
    let url = ""
    const statuses: Record<string, number> = {}
    let good: Answer | undefined
    hooks.set(async (request) => {
      url = urlOf(request)
      statuses.unsigned = (await get(url)).status
      statuses.otherPath = (await get(url, { headers: signed(url, undefined, "/message/other") })).status
      statuses.old = (await get(url, { headers: signed(url, Math.floor(Date.now() / 1000) - 3600) })).status
      statuses.badHex = (await get(url, { headers: `x-smtp-bridge-timestamp: ${Math.floor(Date.now() / 1000)}\r\nx-smtp-bridge-signature: v1=zz\r\n` })).status
      good = await get(url, { headers: signed(url) })
      return { action: "continue" }
    })
    try {
      const message = bigMessage("signed", 64 * 1024)
      expect((await send(bridge.port, message)).reply).toMatch(/^250 2\.0\.0 /)
      expect(statuses).toEqual({ unsigned: 403, otherPath: 403, old: 403, badHex: 403 })
      expect(good!.status).toBe(200)
      expect(good!.body.toString("utf8")).toBe("From: alice@example.org\r\nTo: bob@example.net\r\nSubject: edited before the hook\r\n\r\nthe editor's body\r\n")
      expect(good!.body.toString("utf8")).toBe(stripTrace(bridge.delivered().at(-1)!))
    } finally {
      await bridge.stop()
      await hooks.stop()
    }
    const port = Number(new URL(url).port)
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy()
        resolve(false)
      })
      s.on("error", () => resolve(true))
    })
    expect(refused).toBe(true)
  }, 60_000)
})
