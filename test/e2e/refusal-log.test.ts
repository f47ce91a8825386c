// Every refusal leaves one INFO line naming the session, the client, the user, the command, the
// reply and who decided (a plugin, or "bridge" for the bridge's own policy); never a password.
//
//   C: MAIL FROM:<alice@example.org>            (no AUTH, untrusted)
//   S: 530 5.7.0 Authentication required
//   log: INFO refused MAIL FROM:<alice@example.org>: 530 5.7.0 Authentication required
//        session=... client=127.0.0.1 command=... reply=... plugin=relay-policy
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { definePlugin, Verdict } from "../../src/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const password = "Pw-never-in-logs-7f3a"
const plainToken = Buffer.from(`\0alice@example.com\0${password}`).toString("base64")

/** The refusal lines logged so far whose command matches. */
const refusals = (bridge: TestBridge, command: string) =>
  bridge.logs().filter((l) => typeof l.message === "string" && l.message.startsWith("refused ") && l.command === command)

/** Waits a little for a line logged after the reply left. */
const refusal = async (bridge: TestBridge, command: string): Promise<Record<string, unknown>> => {
  for (let i = 0; i < 40; i++) {
    const found = refusals(bridge, command)
    if (found.length > 0) {
      expect(found).toHaveLength(1)
      return found[0]!
    }
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`no refusal logged for ${command}:\n${bridge.logs().map((l) => JSON.stringify(l)).join("\n")}`)
}

const greeted = async (port: number): Promise<Client> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250-/)
  return c
}

describe("refusals of the bridge's built-in policy are logged", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-refusal-log-"))
    const users = path.join(dir, "users.htpasswd")
    fs.writeFileSync(users, `alice@example.com:${await hashPassword(password, 4)}\n`)
    bridge = await startBridge({ users, allowInsecureAuth: true, limits: { maxMessageSize: 1000 } })
  })
  afterAll(() => bridge.stop())

  it("logs 530 5.7.0 at MAIL for a stranger at INFO, naming relay-policy, the client and the session", async () => {
    const c = await greeted(bridge.port)
    try {
      expect(await c.command("MAIL FROM:<stranger@example.org>")).toBe("530 5.7.0 Authentication required")
      const line = await refusal(bridge, "MAIL FROM:<stranger@example.org>")
      expect(line).toMatchObject({
        level: "INFO",
        message: "refused MAIL FROM:<stranger@example.org>: 530 5.7.0 Authentication required",
        client: "127.0.0.1",
        reply: "530 5.7.0 Authentication required",
        plugin: "relay-policy"
      })
      expect(line.session).toMatch(/^[0-9A-F]{16}$/)
      expect(line.user).toBeUndefined()
    } finally {
      c.close()
    }
  })

  // A user's refusals (553 at MAIL) do not count as invalid commands, so one session can collect
  // many; a stranger's 530s close it after maxInvalidCommands.
  it("logs the first 100 refusals of a session, then one line saying the rest are not logged", async () => {
    const c = await greeted(bridge.port)
    try {
      expect(await c.command(`AUTH PLAIN ${plainToken}`)).toBe("235 2.7.0 Authentication successful")
      const n = 130
      c.send(Array.from({ length: n }, (_, i) => `MAIL FROM:<flood${i}@example.org>\r\n`).join(""))
      for (let i = 0; i < n; i++) expect(await c.read()).toBe("553 5.7.1 Sender address rejected: not owned by user alice@example.com")
      await new Promise((resolve) => setTimeout(resolve, 100))
      const mine = bridge.logs().filter((l) => typeof l.command === "string" && l.command.startsWith("MAIL FROM:<flood"))
      expect(mine).toHaveLength(100)
      const session = mine[0]!.session
      const capped = bridge.logs().filter((l) => l.session === session && String(l.message).startsWith("more than 100 refusals"))
      expect(capped).toHaveLength(1)
    } finally {
      c.close()
    }
  })

  it("logs 553 5.7.1 for a user sending as someone else, naming the user and sender-identity, never the password", async () => {
    const c = await greeted(bridge.port)
    try {
      expect(await c.command(`AUTH PLAIN ${plainToken}`)).toBe("235 2.7.0 Authentication successful")
      expect(await c.command("MAIL FROM:<ceo@example.com>")).toMatch(/^553 5\.7\.1 /)
      const line = await refusal(bridge, "MAIL FROM:<ceo@example.com>")
      expect(line).toMatchObject({ level: "INFO", user: "alice@example.com", plugin: "sender-identity" })
      expect(String(line.reply)).toMatch(/^553 5\.7\.1 Sender address rejected/)
      const all = JSON.stringify(bridge.logs())
      expect(all).not.toContain(password)
      expect(all).not.toContain(plainToken)
    } finally {
      c.close()
    }
  })

  it("logs the bridge's own 552 5.3.4 for a SIZE over the limit as decided by \"bridge\"", async () => {
    const c = await greeted(bridge.port)
    try {
      expect(await c.command(`AUTH PLAIN ${plainToken}`)).toMatch(/^235 /)
      expect(await c.command("MAIL FROM:<alice@example.com> SIZE=5000")).toMatch(/^552 5\.3\.4 /)
      const line = await refusal(bridge, "MAIL FROM:<alice@example.com>")
      expect(line).toMatchObject({ level: "INFO", plugin: "bridge", user: "alice@example.com" })
    } finally {
      c.close()
    }
  })
})

const policy = definePlugin({
  name: "greylist",
  rcptTo: ({ recipient }) =>
    Effect.succeed(
      recipient.mailbox.local === "later" ? Verdict.defer("Greylisted, try again in 5 minutes", { code: 451, enhanced: "4.7.1" }) : Verdict.Continue
    ),
  data: ({ message }) =>
    Effect.succeed(
      message.headers.some((h) => h.name.toLowerCase() === "subject" && h.value.includes("spam"))
        ? Verdict.reject("Looks like spam", { code: 550, enhanced: "5.7.1" })
        : Verdict.Continue
    )
})

const doorman = definePlugin({
  name: "doorman",
  helo: ({ name }) =>
    Effect.succeed(name === "bad.example" ? Verdict.disconnect("Go away", { code: 421, enhanced: "4.7.0" }) : Verdict.Continue)
})

describe("refusals by a user's plugins are logged with the plugin's name", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [policy, doorman] })
  })
  afterAll(() => bridge.stop())

  it("logs a plugin's Defer at RCPT (451 4.7.1) with the plugin's name", async () => {
    const c = await greeted(bridge.port)
    try {
      expect(await c.command("MAIL FROM:<a@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<later@example.net>")).toBe("451 4.7.1 Greylisted, try again in 5 minutes")
      const line = await refusal(bridge, "RCPT TO:<later@example.net>")
      expect(line).toMatchObject({ level: "INFO", plugin: "greylist", reply: "451 4.7.1 Greylisted, try again in 5 minutes" })
      expect(line.transaction).toMatch(/^[0-9A-F]{16}$/)
    } finally {
      c.close()
    }
  })

  it("logs a plugin's Reject at end of data (550 5.7.1) on the DATA command", async () => {
    const c = await greeted(bridge.port)
    try {
      expect(await c.command("MAIL FROM:<a@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: cheap spam\r\n\r\nbuy\r\n.")).toBe("550 5.7.1 Looks like spam")
      expect(await refusal(bridge, "DATA")).toMatchObject({ level: "INFO", plugin: "greylist", reply: "550 5.7.1 Looks like spam" })
    } finally {
      c.close()
    }
  })

  it("logs a plugin's Disconnect at EHLO (421 4.7.0) and closes", async () => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO bad.example")).toBe("421 4.7.0 Go away")
      await c.closed()
      expect(await refusal(bridge, "EHLO bad.example")).toMatchObject({ level: "INFO", plugin: "doorman" })
    } finally {
      c.close()
    }
  })
})
