/** Transcript steps shared by the end-to-end tests. */
import { expect } from "vitest"
import { type Client, connect } from "./SmtpClient.ts"

/** C: EHLO / MAIL / RCPT / DATA, each answered; leaves the client right after the 354. */
export const openData = async (port: number): Promise<Client> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250-/)
  expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
  expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
  expect(await c.command("DATA")).toMatch(/^354 /)
  return c
}
