// One log line per delivery attempt, pass-through and spool alike: the message id, the transport,
// its upstream (host:port, never credentials), the recipient count, the result with the
// upstream's reply and the duration; WARN with the cause when it failed.
//
//   C: MAIL FROM:<alice@example.org> / RCPT TO:<bob@...> / RCPT TO:<carol@...> / DATA ... .
//   S: 250 2.0.0 Ok: queued as <ID>
//   log: INFO delivered via default (smtp://127.0.0.1:PORT): 250 2.0.0 Ok: queued as ...
//        id=<ID> transport=default upstream=smtp://127.0.0.1:PORT recipients=2 result=delivered durationMs=...
//
//   $ smtp-bridge serve --spool DIR --relay smtp://127.0.0.1:PORT   (upstream down: first attempt fails)
//   $ smtp-bridge queue flush --spool DIR                            (upstream up again)
//   log: INFO delivered via default (...) id=<ID> ... result=delivered
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { run } from "../support/exec.ts"
import { freePort, projectRoot, spawnCli } from "../support/runtimes.ts"
import { startSink } from "../support/sink.ts"
import { connect } from "../support/SmtpClient.ts"

/** Sends one message to two recipients; gives back the final reply. */
const send = async (port: number): Promise<string> => {
  const c = await connect(port)
  try {
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.test")).toMatch(/^250-/)
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("RCPT TO:<carol@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    return await c.command("Subject: hi\r\n\r\nHello.\r\n.", 20_000)
  } finally {
    c.close()
  }
}

const attempts = (bridge: TestBridge) =>
  bridge.logs().filter((l) => typeof l.message === "string" && /^deliver(ed|y) via /.test(l.message))

describe("pass-through delivery attempts are logged", () => {
  const stops: Array<() => Promise<void>> = []
  afterAll(async () => {
    for (const stop of stops) await stop()
  })

  it("logs one INFO line: id, transport, upstream, 2 recipients, delivered with the upstream's 250, duration", async () => {
    const sink = await startSink()
    stops.push(sink.stop)
    const bridge = await startBridge({ relay: `smtp://127.0.0.1:${sink.port}`, trust: ["127.0.0.1/32"] })
    stops.push(bridge.stop)
    const final = await send(bridge.port)
    expect(final).toMatch(/^250 /)
    const id = final.match(/^250 2\.0\.0 Ok: queued as (\S+)$/)![1]
    const lines = attempts(bridge)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({
      level: "INFO",
      id,
      transport: "default",
      upstream: `smtp://127.0.0.1:${sink.port}`,
      recipients: 2,
      result: "delivered"
    })
    expect(String(lines[0]!.reply)).toMatch(/^250 /)
    expect(typeof lines[0]!.durationMs).toBe("number")
    // The line about the message names its id once, as `transaction`.
    const accepted = bridge.logs().find((l) => l.message === "message accepted")
    expect(accepted).toMatchObject({ transaction: id, recipients: 2, transports: "default" })
    expect(JSON.stringify(accepted)).not.toContain(`queued as ${id}`)
  })

  it("logs a relay that cannot be reached at WARN with the cause and no credentials; the client gets 451 4.4.1", async () => {
    const closed = await freePort()
    const bridge = await startBridge({ relay: `smtp://user:hunter2@127.0.0.1:${closed}`, trust: ["127.0.0.1/32"] })
    stops.push(bridge.stop)
    expect(await send(bridge.port)).toMatch(/^451 4\.4\.1 /)
    const lines = attempts(bridge)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({
      level: "WARN",
      transport: "default",
      upstream: `smtp://127.0.0.1:${closed}`,
      recipients: 2,
      result: "failed",
      reason: "Unreachable"
    })
    expect(String(lines[0]!.cause)).toMatch(/ECONNREFUSED|refused/i)
    expect(String(lines[0]!.message)).toContain(String(lines[0]!.cause))
    expect(JSON.stringify(bridge.logs())).not.toContain("hunter2")
  })
})

describe("spool deliveries after `queue flush` are logged (real CLI under Bun)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-delivery-log-"))
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it("logs the failed first attempt at WARN, then the delivery after `queue flush` at INFO", async () => {
    const port = await freePort()
    const serve = await spawnCli("bun", [
      "serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--spool", dir, "--relay", `smtp://127.0.0.1:${port}`,
      "--log-format", "json"
    ])
    let sink: Awaited<ReturnType<typeof startSink>> | undefined
    try {
      const listening = Number((await serve.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      const id = (await send(listening)).match(/^250 2\.0\.0 Ok: queued as (\S+)$/)![1]!
      const lineOf = (json: string) => JSON.parse(json) as Record<string, unknown>
      const failed = lineOf((await serve.waitForLog(new RegExp(`^\\{.*"message":"delivery via default.*"id":"${id}".*$`, "m")))[0])
      expect(failed).toMatchObject({ level: "WARN", transport: "default", upstream: `smtp://127.0.0.1:${port}`, recipients: 2, result: "failed" })
      expect(String(failed.cause)).toMatch(/ECONNREFUSED|refused/i)

      sink = await startSink({ port })
      const flush = await run(path.join(projectRoot, "node_modules", ".bin", "bun"), [path.join(projectRoot, "src", "cli.ts"), "queue", "flush", "--spool", dir])
      expect(flush.stdout).toContain("1 message(s) due now")
      const delivered = lineOf((await serve.waitForLog(new RegExp(`^\\{.*"message":"delivered via default.*"id":"${id}".*$`, "m"), 20_000))[0])
      expect(delivered).toMatchObject({ level: "INFO", transport: "default", recipients: 2, result: "delivered" })
      expect(String(delivered.reply)).toMatch(/^250 /)
      await sink.waitFor((c) => c.messages >= 1)
    } finally {
      await serve.kill()
      await sink?.stop()
    }
  }, 60_000)
})
