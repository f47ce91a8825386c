/**
 * Sender identity: an authenticated user may only use the MAIL FROM addresses the config gives
 * them (`senders`), so that one account cannot send as another.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import nodemailer from "nodemailer"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { run } from "../support/exec.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const plainToken = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`).toString("base64")

describe("senders: { alice: [alice@example.com, @example.org], kate: [kate@example.com, åse@example.com, @bücher.example] }", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    const { cert, key } = testCertificate()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-sender-"))
    const users = path.join(dir, "users.htpasswd")
    const hash = await hashPassword("secret", 4)
    fs.writeFileSync(users, `alice:${hash}\nbob@example.net:${hash}\nmallory:${hash}\nkate:${hash}\n`)
    bridge = await startBridge({
      tls: { cert, key },
      users,
      senders: { alice: ["alice@example.com", "@example.org"], kate: ["kate@example.com", "åse@example.com", "@bücher.example"] }
    })
  })
  afterAll(() => bridge.stop())

  /** Greets, upgrades, logs in as `user`. */
  const login = async (user: string): Promise<Client> => {
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    await c.command("EHLO client.test")
    expect(await c.command("STARTTLS")).toMatch(/^220 /)
    await c.startTls()
    await c.command("EHLO client.test")
    expect(await c.command(`AUTH PLAIN ${plainToken(user, "secret")}`)).toBe("235 2.7.0 Authentication successful")
    return c
  }

  it.each([
    "alice@example.com",
    "ALICE@Example.COM",
    "anything@example.org",
    "billing@EXAMPLE.ORG"
  ])("accepts MAIL FROM:<%s> from alice with 250 2.1.0", async (from) => {
    const c = await login("alice")
    try {
      expect(await c.command(`MAIL FROM:<${from}>`)).toBe("250 2.1.0 Ok")
    } finally {
      c.close()
    }
  })

  it.each([
    "bob@example.com",
    "alice@example.net",
    "alice@sub.example.org",
    "alice@example.com.evil.example"
  ])("refuses MAIL FROM:<%s> from alice with 553 5.7.1", async (from) => {
    const c = await login("alice")
    try {
      expect(await c.command(`MAIL FROM:<${from}>`)).toMatch(/^553 5\.7\.1 .*alice/)
      // The session is still usable: the right sender goes through.
      expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    } finally {
      c.close()
    }
  })

  // toLowerCase() folds U+212A KELVIN SIGN to k and U+212B ANGSTROM SIGN to å: other mailboxes
  // to a mail system that stores local parts as they are. Only ASCII case is ignored there.
  it.each([
    ["\u212Aate@example.com", "a Kelvin sign for k"],
    ["\u212Bse@example.com", "an Ångström sign for å"],
    ["ÅSE@example.com", "a non-ASCII capital"],
    ["ka\u200Bte@example.com", "a zero-width space"]
  ])("refuses MAIL FROM:<%s> SMTPUTF8 from kate (%s) with 553 5.7.1", async (from) => {
    const c = await login("kate")
    try {
      expect(await c.command(`MAIL FROM:<${from}> SMTPUTF8`)).toMatch(/^553 5\.7\.1 .*kate/)
      expect(await c.command("MAIL FROM:<KATE@Example.COM>")).toBe("250 2.1.0 Ok")
    } finally {
      c.close()
    }
  })

  it.each([
    ["x@xn--bcher-kva.example", "", "the A-label of bücher.example"],
    ["x@bu\u0308cher.example", " SMTPUTF8", "bücher.example decomposed (NFD)"],
    ["x@BÜCHER.example", " SMTPUTF8", "bücher.example in capitals (IDNA maps them)"],
    ["åse@example.com", " SMTPUTF8", "a non-ASCII local part byte for byte"]
  ])("accepts MAIL FROM:<%s>%s from kate (%s) with 250 2.1.0", async (from, param) => {
    const c = await login("kate")
    try {
      expect(await c.command(`MAIL FROM:<${from}>${param}`)).toBe("250 2.1.0 Ok")
    } finally {
      c.close()
    }
  })

  it("refuses a header From with a Kelvin sign for k after end of data with 550 5.7.1", async () => {
    const c = await login("kate")
    try {
      expect(await c.command("MAIL FROM:<kate@example.com> SMTPUTF8")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.net>")).toMatch(/^250 /)
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("From: Kate <\u212Aate@example.com>\r\nSubject: kelvin\r\n\r\nx\r\n."))
        .toBe("550 5.7.1 Header From rejected: ?ate@example.com is not owned by user kate")
    } finally {
      c.close()
    }
  })

  it("accepts the null sender <> (bounces) from alice", async () => {
    const c = await login("alice")
    try {
      expect(await c.command("MAIL FROM:<>")).toBe("250 2.1.0 Ok")
    } finally {
      c.close()
    }
  })

  it("lets a user not in `senders` whose name is an address use only that address", async () => {
    const c = await login("bob@example.net")
    try {
      expect(await c.command("MAIL FROM:<alice@example.com>")).toMatch(/^553 5\.7\.1 /)
      expect(await c.command("MAIL FROM:<bob@example.net>")).toBe("250 2.1.0 Ok")
    } finally {
      c.close()
    }
  })

  it("refuses every sender to a user not in `senders` whose name is no address (553 5.7.1)", async () => {
    const c = await login("mallory")
    try {
      expect(await c.command("MAIL FROM:<mallory@example.com>")).toMatch(/^553 5\.7\.1 /)
      expect(await c.command("MAIL FROM:<alice@example.com>")).toMatch(/^553 5\.7\.1 /)
    } finally {
      c.close()
    }
  })

  it("refuses nodemailer sending as someone else with 553 5.7.1 (EENVELOPE) and delivers nothing", async () => {
    const before = bridge.delivered().length
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: bridge.port,
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: "alice", pass: "secret" },
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 10_000
    })
    try {
      await expect(transport.sendMail({ from: "ceo@example.com", to: "bob@example.net", subject: "spoof", text: "x" }))
        .rejects.toMatchObject({ responseCode: 553, response: expect.stringMatching(/^553 5\.7\.1 /) })
      const info = await transport.sendMail({ from: "news@example.org", to: "bob@example.net", subject: "allowed domain", text: "x" })
      expect(info.response).toMatch(/^250 2\.0\.0 /)
    } finally {
      transport.close()
    }
    const files = bridge.delivered()
    expect(files.length).toBe(before + 1)
    expect(files.filter((f) => f.toString("utf8").includes("Subject: spoof"))).toHaveLength(0)
  })

  it("refuses swaks sending as someone else with 553 5.7.1", async () => {
    const r = await run("swaks", [
      "--server", `127.0.0.1:${bridge.port}`, "--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "secret",
      "--from", "bob@example.com", "--to", "carol@example.net"
    ])
    expect(r.stdout).toMatch(/<~\* +553 5\.7\.1 /)
    expect(r.code).not.toBe(0)
  })
})
