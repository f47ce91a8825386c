/**
 * The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) over SMTP AUTH (RFC 4954), written here
 * because no SMTP client the tests use speaks it. It checks the server's signature too, so a
 * server that did not know the password cannot pass.
 *
 * @example
 * const result = await scramSha256(client, "alice@example.test", "secret")
 * expect(result.reply).toBe("235 2.7.0 Authentication successful")
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto"
import type { Client } from "./SmtpClient.ts"

const b64 = (data: string | Buffer): string => Buffer.from(data).toString("base64")
const hmac = (key: Buffer, text: string): Buffer => createHmac("sha256", key).update(text, "utf8").digest()

/** RFC 5802 5.1: `=` and `,` in a user name are written `=3D` and `=2C`. */
const saslname = (user: string): string => user.replace(/=/g, "=3D").replace(/,/g, "=2C")

const attributes = (message: string): Map<string, string> =>
  new Map(message.split(",").map((part) => [part.slice(0, 1), part.slice(2)] as const))

export interface ScramResult {
  /** The server's final SMTP reply. */
  readonly reply: string
  /** Whether the server proved it knows the password (its `v=` matched). */
  readonly serverVerified: boolean
}

/** Runs AUTH SCRAM-SHA-256 on an EHLO'd, encrypted session; stops at the first reply that is not 334. */
export const scramSha256 = async (c: Client, user: string, password: string): Promise<ScramResult> => {
  const clientNonce = randomBytes(18).toString("base64")
  const firstBare = `n=${saslname(user)},r=${clientNonce}`
  const first = await c.command(`AUTH SCRAM-SHA-256 ${b64(`n,,${firstBare}`)}`)
  if (!first.startsWith("334 ")) return { reply: first, serverVerified: false }
  const serverFirst = Buffer.from(first.slice(4), "base64").toString("utf8")
  const server = attributes(serverFirst)
  const nonce = server.get("r") ?? ""
  if (!nonce.startsWith(clientNonce)) throw new Error(`the server's nonce does not extend ours: ${serverFirst}`)
  const salted = pbkdf2Sync(password, Buffer.from(server.get("s") ?? "", "base64"), Number(server.get("i")), 32, "sha256")
  const clientKey = hmac(salted, "Client Key")
  const storedKey = createHash("sha256").update(clientKey).digest()
  const withoutProof = `c=${b64("n,,")},r=${nonce}`
  const authMessage = `${firstBare},${serverFirst},${withoutProof}`
  const signature = hmac(storedKey, authMessage)
  const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!))
  const final = await c.command(b64(`${withoutProof},p=${proof.toString("base64")}`))
  if (!final.startsWith("334 ")) return { reply: final, serverVerified: false }
  const expected = hmac(hmac(salted, "Server Key"), authMessage)
  const got = Buffer.from(attributes(Buffer.from(final.slice(4), "base64").toString("utf8")).get("v") ?? "", "base64")
  const serverVerified = got.length === expected.length && timingSafeEqual(got, expected)
  // RFC 4954: SMTP has no success data, so the server-final message came as a challenge: an empty response ends it.
  return { reply: await c.command(""), serverVerified }
}
