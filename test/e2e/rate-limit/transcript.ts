/**
 * Shared steps of the rate-limit transcripts: a test AUTH plugin (any user, password "secret")
 * and the C:/S: exchanges of a session, so each test reads as the replies it expects.
 */
import { Effect } from "effect"
import { expect } from "vitest"
import { definePlugin, Verdict } from "../../../src/index.ts"
import { type Client, connect } from "../../support/SmtpClient.ts"

export const passwordAuth = definePlugin({
  name: "test-auth",
  auth: ({ password, username }) =>
    Effect.succeed(
      password === "secret"
        ? Verdict.accept({ identity: username })
        : Verdict.Reject({ code: 535, enhanced: "5.7.8", text: "Authentication credentials invalid" })
    )
})

export const plain = (user: string, password: string): string => Buffer.from(`\0${user}\0${password}`, "utf8").toString("base64")

/** C: connects and sends EHLO; S: 220, 250. */
export const open = async (port: number): Promise<Client> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250-/)
  return c
}

/** C: AUTH PLAIN as `user`; S: 235. */
export const login = async (port: number, user: string): Promise<Client> => {
  const c = await open(port)
  expect(await c.command(`AUTH PLAIN ${plain(user, "secret")}`)).toBe("235 2.7.0 Authentication successful")
  return c
}

/**
 * C: MAIL, RCPT for each recipient, DATA when one was accepted. Returns the MAIL reply, the RCPT
 * replies and the final reply (undefined when MAIL was refused or no RCPT was accepted).
 */
export const mail = async (c: Client, from: string, to: ReadonlyArray<string> = ["bob@example.net"]) => {
  const mailReply = await c.command(`MAIL FROM:<${from}>`)
  if (!mailReply.startsWith("250")) return { mail: mailReply, rcpt: [] as Array<string>, final: undefined }
  const rcpt: Array<string> = []
  for (const address of to) rcpt.push(await c.command(`RCPT TO:<${address}>`))
  if (!rcpt.some((r) => r.startsWith("250"))) {
    expect(await c.command("RSET")).toMatch(/^250 /)
    return { mail: mailReply, rcpt, final: undefined }
  }
  expect(await c.command("DATA")).toMatch(/^354 /)
  const final = await c.command("Subject: rate limit test\r\n\r\nhello\r\n.")
  return { mail: mailReply, rcpt, final }
}
