/**
 * A webhook that answers with a redirect: the bridge never follows it. The message, its signature
 * and the configured headers reach only the configured URL; the client gets a 4xx in
 * pass-through mode so that it keeps the message and retries.
 */
import { afterEach, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { connect } from "../support/SmtpClient.ts"

interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

interface Server {
  readonly url: string
  readonly seen: Array<Seen>
  readonly close: () => Promise<void>
}

/** A real HTTP server on loopback that records every request and answers with `answer`. */
const listen = (answer: (res: http.ServerResponse) => void): Promise<Server> =>
  new Promise((resolve) => {
    const seen: Array<Seen> = []
    const server = http.createServer((req, res) => {
      const parts: Array<Buffer> = []
      req.on("data", (c: Buffer) => parts.push(c))
      req.on("end", () => {
        seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(parts).toString() })
        answer(res)
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port
      resolve({
        url: `http://127.0.0.1:${port}`,
        seen,
        close: () => new Promise((done) => {
          server.closeAllConnections()
          server.close(() => done())
        })
      })
    })
  })

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const send = async (bridge: TestBridge): Promise<string> => {
  const c = await connect(bridge.port)
  try {
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    return await c.command("Subject: redirect\r\n\r\nthe body that must not travel\r\n.")
  } finally {
    c.close()
  }
}

describe("Webhook redirects", () => {
  for (const status of [301, 302, 303, 307, 308]) {
    it(`answers 451 4.4.0 when the webhook answers ${status}, and the Location's server receives nothing`, async () => {
      // The second server answers 200 to anything: if the bridge followed a 302/303 as a GET,
      // the client would get a 250 for a message nobody has.
      const elsewhere = await listen((res) => res.writeHead(200).end("ok"))
      cleanups.push(elsewhere.close)
      const hook = await listen((res) => res.writeHead(status, { location: `${elsewhere.url}/steal?token=abc` }).end())
      cleanups.push(hook.close)
      const bridge = await startBridge({
        trust: ["127.0.0.0/8"],
        transports: {
          default: { type: "webhook", url: `${hook.url}/inbound`, secret: "k3y", headers: { authorization: "Bearer t0ken" } }
        }
      })
      cleanups.push(bridge.stop)

      expect(await send(bridge)).toMatch(new RegExp(`^451 4\\.4\\.0 .*HTTP ${status}`))
      // Give a follower time to reach the second server, had there been one.
      await new Promise((r) => setTimeout(r, 300))
      expect(elsewhere.seen).toEqual([])
      expect(hook.seen.length).toBe(1)
      expect(hook.seen[0]!.method).toBe("POST")
      expect(hook.seen[0]!.url).toBe("/inbound")
      expect(hook.seen[0]!.headers.authorization).toBe("Bearer t0ken")
      expect(bridge.delivered()).toEqual([])
    })
  }

  it("with a spool, answers 250 and retries the redirected message until the webhook itself answers 200", async () => {
    const elsewhere = await listen((res) => res.writeHead(200).end("ok"))
    cleanups.push(elsewhere.close)
    let answers = 0
    const hook = await listen((res) => {
      answers++
      if (answers === 1) res.writeHead(308, { location: `${elsewhere.url}/steal` }).end()
      else res.writeHead(200).end("ok")
    })
    cleanups.push(hook.close)
    const spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-redirect-spool-"))
    cleanups.push(() => Promise.resolve(fs.rmSync(spoolDir, { recursive: true, force: true })))
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], webhook: `${hook.url}/inbound`, spool: { dir: spoolDir, initialDelay: 200 } })
    cleanups.push(bridge.stop)
    expect(await send(bridge)).toMatch(/^250 2\.0\.0 /)
    const deadline = Date.now() + 10_000
    while (hook.seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(hook.seen.length).toBe(2)
    expect(hook.seen[1]!.body).toContain("the body that must not travel")
    expect(hook.seen[1]!.headers["idempotency-key"]).toBe(hook.seen[0]!.headers["idempotency-key"])
    expect(elsewhere.seen).toEqual([])
  })

  it("answers 451 4.4.0 to a relative Location too, without a second request to the same server", async () => {
    const hook = await listen((res) => res.writeHead(307, { location: "/other" }).end())
    cleanups.push(hook.close)
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], webhook: `${hook.url}/inbound` })
    cleanups.push(bridge.stop)
    expect(await send(bridge)).toMatch(/^451 4\.4\.0 /)
    await new Promise((r) => setTimeout(r, 300))
    expect(hook.seen.map((s) => s.url)).toEqual(["/inbound"])
  })
})
