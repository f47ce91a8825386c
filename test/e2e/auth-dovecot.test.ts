/**
 * auth-dovecot against a real Dovecot auth service (started by the test, auth only) through the
 * bridge: swaks with AUTH PLAIN and LOGIN (checked with Dovecot by the `auth` hook), a
 * SCRAM-SHA-256 client (relayed step by step), Dovecot's temporary failures, and Dovecot going
 * away and coming back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { authDovecot } from "../../plugins/auth-dovecot/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { type DovecotAuth, dovecotAuthAvailable, startDovecotAuth } from "../support/dovecotAuth.ts"
import { until } from "../support/eventually.ts"
import { run } from "../support/exec.ts"
import { scramSha256 } from "../support/scram.ts"
import { type Client, connect } from "../support/SmtpClient.ts"
import { needTool } from "../support/tools.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")

// Wrong passwords are sent on purpose from one address: the AUTH throttle is set wide here.
const wideThrottle = { authFailures: { perIp: "1000/hour", perUser: "1000/hour", delay: "1 millis", maxDelay: "1 millis" } } as const

const users = [
  { name: "alice@example.test", password: "alice-secret", scheme: "SCRAM-SHA-256" },
  { name: "bob@example.test", password: "bob-secret", scheme: "BLF-CRYPT" }
] as const

/** A session past EHLO over STARTTLS; gives the client and the EHLO reply. */
const secured = async (port: number): Promise<{ c: Client; ehlo: string }> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  await c.command("EHLO client.test")
  expect(await c.command("STARTTLS")).toMatch(/^220 /)
  await c.startTls()
  return { c, ehlo: await c.command("EHLO client.test") }
}

describe.skipIf(!needTool("dovecot", dovecotAuthAvailable()))("auth-dovecot against Dovecot's auth service", () => {
  let dovecot: DovecotAuth
  let bridge: TestBridge
  let tcpBridge: TestBridge
  const { cert, key } = testCertificate()

  beforeAll(async () => {
    dovecot = await startDovecotAuth({ users })
    bridge = await startBridge({ tls: { cert, key }, rateLimit: wideThrottle, plugins: [authDovecot({ path: dovecot.socket, penalty: false, backoff: "50 millis", maxBackoff: "200 millis" })] })
    tcpBridge = await startBridge({ tls: { cert, key }, rateLimit: wideThrottle, plugins: [authDovecot({ host: "127.0.0.1", port: dovecot.port, penalty: false })] })
  }, 30_000)
  afterAll(async () => {
    await bridge?.stop()
    await tcpBridge?.stop()
    await dovecot?.remove()
  })

  it("advertises Dovecot's SCRAM-SHA-256 after the bridge's PLAIN LOGIN, once TLS is up", async () => {
    await until("connected to Dovecot", async () => {
      const { c, ehlo } = await secured(bridge.port)
      c.close()
      return ehlo.includes("SCRAM-SHA-256")
    })
    const { c, ehlo } = await secured(bridge.port)
    expect(ehlo).toMatch(/^250[- ]AUTH PLAIN LOGIN SCRAM-SHA-256$/m)
    c.close()
  })

  describe("with swaks", () => {
    const swaks = (port: number, mechanism: "PLAIN" | "LOGIN", user: string, password: string) =>
      run("swaks", [
        "--server", `127.0.0.1:${port}`, "--tls", "--quit-after", "AUTH",
        "--auth", mechanism, "--auth-user", user, "--auth-password", password, "--helo", "swaks.test"
      ])

    it.each([
      ["PLAIN", "SCRAM-SHA-256"], ["LOGIN", "SCRAM-SHA-256"], ["PLAIN", "BLF-CRYPT"], ["LOGIN", "BLF-CRYPT"]
    ] as const)("authenticates with AUTH %s a user whose Dovecot password is %s: 235 2.7.0", async (mechanism, scheme) => {
      const user = users.find((u) => u.scheme === scheme)!
      const r = await swaks(bridge.port, mechanism, user.name, user.password)
      expect(r.stdout, r.stdout + r.stderr).toMatch(/<~ +235 2\.7\.0 /)
    })

    it.each(["PLAIN", "LOGIN"] as const)("refuses a wrong password with AUTH %s: 535 5.7.8", async (mechanism) => {
      const r = await swaks(bridge.port, mechanism, "bob@example.test", "wrong")
      expect(r.stdout).toMatch(/<~\* +535 5\.7\.8 /)
    })

    it("answers Dovecot's FAIL ... temp (its passdb could not decide) with 454 4.7.0, not 535", async () => {
      const r = await swaks(bridge.port, "PLAIN", "carol@broken.test", "whatever")
      expect(r.stdout).toMatch(/<~\* +454 4\.7\.0 /)
    })

    it("speaks to Dovecot's TCP listener too: 235 2.7.0", async () => {
      await until("connected over TCP", async () => {
        const { c, ehlo } = await secured(tcpBridge.port)
        c.close()
        return ehlo.includes("SCRAM-SHA-256")
      })
      const r = await swaks(tcpBridge.port, "PLAIN", users[1].name, users[1].password)
      expect(r.stdout, r.stdout + r.stderr).toMatch(/<~ +235 2\.7\.0 /)
    })
  })

  describe("with SCRAM-SHA-256 (RFC 5802, 7677) relayed to Dovecot", () => {
    it("authenticates, and Dovecot proves it knows the password: 235 2.7.0", async () => {
      const { c } = await secured(bridge.port)
      const result = await scramSha256(c, users[0].name, users[0].password)
      expect(result).toEqual({ reply: "235 2.7.0 Authentication successful", serverVerified: true })
      // Authenticated as Dovecot's user: MAIL needs no other check.
      expect(await c.command(`MAIL FROM:<${users[0].name}>`)).toMatch(/^250 /)
      c.close()
    })

    it("refuses a wrong password: 535 5.7.8", async () => {
      const { c } = await secured(bridge.port)
      expect((await scramSha256(c, users[0].name, "wrong")).reply).toMatch(/^535 5\.7\.8 /)
      c.close()
    })

    it("works over the TCP listener", async () => {
      const { c } = await secured(tcpBridge.port)
      expect((await scramSha256(c, users[0].name, users[0].password)).reply).toBe("235 2.7.0 Authentication successful")
      c.close()
    })

    it("cancels with * (501 5.0.0), and the next exchange on the same session succeeds", async () => {
      const { c } = await secured(bridge.port)
      expect(await c.command(`AUTH SCRAM-SHA-256 ${b64("n,,n=alice@example.test,r=abcdefgh")}`)).toMatch(/^334 /)
      expect(await c.command("*")).toBe("501 5.0.0 Authentication cancelled")
      expect((await scramSha256(c, users[0].name, users[0].password)).reply).toBe("235 2.7.0 Authentication successful")
      c.close()
    })

    it("multiplexes 20 parallel exchanges over its one connection: all 235", async () => {
      const results = await Promise.all(Array.from({ length: 20 }, async () => {
        const { c } = await secured(bridge.port)
        const r = await scramSha256(c, users[0].name, users[0].password)
        c.close()
        return r.reply
      }))
      expect(results).toEqual(Array.from({ length: 20 }, () => "235 2.7.0 Authentication successful"))
    })
  })

  it("answers 454 4.7.0 while Dovecot is down, and authenticates again once it is back", async () => {
    await dovecot.stop()
    try {
      const { c, ehlo } = await secured(bridge.port)
      expect(ehlo).not.toContain("SCRAM-SHA-256")
      expect(await c.command(`AUTH PLAIN ${b64(`\0${users[1].name}\0${users[1].password}`)}`)).toMatch(/^454 4\.7\.0 /)
      c.close()
    } finally {
      await dovecot.start()
    }
    const reply = await until("reconnected to Dovecot", async () => {
      const { c } = await secured(bridge.port)
      const r = await c.command(`AUTH PLAIN ${b64(`\0${users[1].name}\0${users[1].password}`)}`)
      c.close()
      return r.startsWith("235") ? r : undefined
    }, { timeout: 15_000, interval: 100 })
    expect(reply).toBe("235 2.7.0 Authentication successful")
  }, 30_000)
})
