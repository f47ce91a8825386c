/**
 * Password checks never run on the event loop (runtime/Password.ts: Bun's native pool, worker
 * threads on Deno and Node): while 30 AUTH attempts against bcrypt cost-11 hashes (~130 ms of CPU
 * each) run in parallel, a NOOP on another session is still answered at once. On the main thread
 * the same NOOP waited for all of them (seconds). bench/auth-latency.ts has the figures.
 *
 *   (30 sessions)  C: AUTH PLAIN <carol, wrong password>   ... S: 535 5.7.8 (later)
 *   (meanwhile)    C: NOOP                                  S: 250 2.0.0 Ok (within 500 ms)
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const plain = (user: string, password: string): string => Buffer.from(`\0${user}\0${password}`, "utf8").toString("base64")

const open = async (port: number): Promise<Client> => {
  const c = await connect(port, { timeoutMs: 60_000 })
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250-/)
  return c
}

describe("AUTH and the event loop", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-auth-loop-"))
    fs.writeFileSync(path.join(dir, "users.htpasswd"), `carol:${await hashPassword("carol's password", 11)}\n`)
    // The throttle would stop most of these guesses before the check; here every one is checked.
    bridge = await startBridge({ users: path.join(dir, "users.htpasswd"), allowInsecureAuth: true, rateLimit: { authFailures: false } })
  }, 30_000)
  afterAll(() => bridge.stop())

  it("answers NOOP on another session within 500 ms while 30 bcrypt checks run in parallel, which then get 535 5.7.8", async () => {
    const probe = await open(bridge.port)
    const sessions = await Promise.all(Array.from({ length: 30 }, () => open(bridge.port)))
    const auths = Promise.all(sessions.map((c) => c.command(`AUTH PLAIN ${plain("carol", "wrong")}`)))
    let settled = false
    void auths.finally(() => {
      settled = true
    })
    // Let the checks start, then measure a few NOOPs while they are still running.
    await new Promise((resolve) => setTimeout(resolve, 50))
    const rtts: Array<number> = []
    for (let i = 0; i < 5 && !settled; i++) {
      const started = performance.now()
      expect(await probe.command("NOOP")).toBe("250 2.0.0 Ok")
      rtts.push(performance.now() - started)
    }
    const replies = await auths
    expect(replies.every((r) => r === "535 5.7.8 Authentication credentials invalid"), replies.join("\n")).toBe(true)
    expect(rtts.length).toBeGreaterThan(0)
    expect(Math.max(...rtts)).toBeLessThan(500)
    for (const c of [probe, ...sessions]) c.close()
  }, 120_000)
})
