// What the bridge repeats of a client's words: printable ASCII only, at most 64 characters.
//
//   C: EHLO <600 octets, some of them not ASCII>
//   S: 250-bridge.test greets aaaa...aaa?? ... (64 characters, then "...")
//   C: MAIL FROM:<a@example.com> <500 octets of "=x">
//   S: 555 5.5.4 Malformed parameter =x=x...
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { connect } from "../support/SmtpClient.ts"

const bytes = (...parts: ReadonlyArray<string | ReadonlyArray<number>>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => typeof p === "string" ? [...Buffer.from(p, "latin1")] : [...p]))

/** Each line of a reply is printable ASCII (the client decodes as UTF-8: any other byte shows) and at most 512 octets. */
const expectPlainShort = (reply: string) => {
  for (const line of reply.split("\n")) {
    expect(line).toMatch(/^[\x20-\x7e]*$/)
    expect(line.length + 2).toBeLessThanOrEqual(512)
  }
}

describe("echoed client text", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"] })
  })
  afterAll(() => bridge.stop())

  it("greets an EHLO name of 600 octets with 8-bit and invalid UTF-8 bytes by its first 64 printable characters and ...", async () => {
    const c = await connect(bridge.port)
    await c.read()
    c.send(bytes("EHLO ", [0xc3, 0xa9, 0xc0, 0xae, 0xff, 0x85], "a".repeat(600), "\r\n"))
    const reply = await c.read()
    expectPlainShort(reply)
    // é is one character, each byte of the overlong C0 AE and the lone FF and 85 one more.
    expect(reply.split("\n")[0]).toBe(`250-bridge.test greets ?????${"a".repeat(59)}...`)
    expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    c.close()
  })

  it("greets an ordinary EHLO name unchanged", async () => {
    const c = await connect(bridge.port)
    await c.read()
    expect((await c.command("EHLO client.example.test")).split("\n")[0]).toBe("250-bridge.test greets client.example.test")
    c.close()
  })

  it("answers a malformed MAIL parameter of 1,000 octets with 555 5.5.4 naming its first 64 printable characters", async () => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    c.send(bytes("MAIL FROM:<a@example.com> ", [0xc0, 0xae], "=x".repeat(500), "\r\n"))
    const reply = await c.read()
    expectPlainShort(reply)
    expect(reply).toBe(`555 5.5.4 Malformed parameter ??${"=x".repeat(31)}...`)
    c.close()
  })

  it("answers an unknown MAIL parameter of 1,000 octets with 555 5.5.4 naming its first 64 characters", async () => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    const reply = await c.command(`MAIL FROM:<a@example.com> X-${"Y".repeat(1000)}=1`)
    expectPlainShort(reply)
    expect(reply).toBe(`555 5.5.4 Unsupported parameter X-${"Y".repeat(62)}...`)
    c.close()
  })
})
