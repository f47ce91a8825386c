/**
 * PIPELINING (RFC 2920): a whole transaction in one write gets its replies in order, and the
 * server sends the replies of one pipelined group together rather than one packet per command.
 */
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, stripTrace, type TestBridge } from "../support/bridge.ts"
import { run } from "../support/exec.ts"
import { connect } from "../support/SmtpClient.ts"

/**
 * A socket that records each chunk the server's writes arrive in, for checking that replies were
 * batched. `until` resolves once the collected text matches, or rejects after `timeoutMs`.
 */
const rawSocket = async (port: number) => {
  const chunks: Array<string> = []
  const listeners = new Set<() => void>()
  const socket = net.connect({ host: "127.0.0.1", port })
  socket.setNoDelay(true)
  socket.on("data", (chunk: Buffer) => {
    chunks.push(chunk.toString("utf8"))
    for (const l of [...listeners]) l()
  })
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve)
    socket.once("error", reject)
  })
  const until = (pattern: RegExp, timeoutMs = 10_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pattern.test(chunks.join(""))) {
          clearTimeout(timer)
          listeners.delete(check)
          resolve()
        }
      }
      const timer = setTimeout(() => {
        listeners.delete(check)
        reject(new Error(`timed out waiting for ${pattern}; got ${JSON.stringify(chunks)}`))
      }, timeoutMs)
      listeners.add(check)
      check()
    })
  /** Forgets what was received so far. */
  const reset = () => void chunks.splice(0)
  return { socket, chunks, until, reset }
}

describe("PIPELINING", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"] })
  })
  afterAll(() => bridge.stop())

  it("is advertised in EHLO", async () => {
    const c = await connect(bridge.port)
    try {
      await c.read()
      expect(await c.command("EHLO client.test")).toMatch(/^250-PIPELINING$/m)
    } finally {
      c.close()
    }
  })

  it("answers MAIL, RCPT, RCPT, DATA sent in one write with 250, 250, 250, 354 in order, then delivers", async () => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      await c.command("EHLO client.test")
      // C: MAIL FROM / RCPT TO / RCPT TO / DATA  (one write)
      c.send("MAIL FROM:<app@example.com>\r\nRCPT TO:<one@example.net>\r\nRCPT TO:<two@example.net>\r\nDATA\r\n")
      expect(await c.read()).toBe("250 2.1.0 Ok")
      expect(await c.read()).toBe("250 2.1.5 Ok")
      expect(await c.read()).toBe("250 2.1.5 Ok")
      expect(await c.read()).toMatch(/^354 /)
      // C: the message, its end and QUIT  (one write)
      c.send("Subject: pipelined\r\n\r\nline one\r\n..dot-stuffed\r\n.\r\nQUIT\r\n")
      expect(await c.read()).toMatch(/^250 2\.0\.0 Ok: queued as \w+$/)
      expect(await c.read()).toMatch(/^221 2\.0\.0 /)
      await c.closed()
    } finally {
      c.close()
    }
    const files = bridge.delivered().filter((f) => f.toString("utf8").includes("Subject: pipelined"))
    expect(files).toHaveLength(1)
    expect(stripTrace(files[0]!)).toBe("Subject: pipelined\r\n\r\nline one\r\n.dot-stuffed\r\n")
    expect(files[0]!.toString("utf8")).toMatch(/^Delivered-To: one@example\.net\r\nDelivered-To: two@example\.net\r\n/m)
  })

  it("answers EHLO, MAIL, RCPT, DATA, message and QUIT all sent in one write", async () => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      c.send(
        "EHLO client.test\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<three@example.net>\r\nDATA\r\n" +
          "Subject: all at once\r\n\r\nbody\r\n.\r\nQUIT\r\n"
      )
      expect(await c.read()).toMatch(/^250-bridge\.test greets client\.test/)
      expect(await c.read()).toBe("250 2.1.0 Ok")
      expect(await c.read()).toBe("250 2.1.5 Ok")
      expect(await c.read()).toMatch(/^354 /)
      expect(await c.read()).toMatch(/^250 2\.0\.0 Ok: queued as /)
      expect(await c.read()).toMatch(/^221 /)
      await c.closed()
    } finally {
      c.close()
    }
    expect(bridge.delivered().filter((f) => f.toString("utf8").includes("Subject: all at once"))).toHaveLength(1)
  })

  it("keeps the order when a pipelined command fails: 250, 501, 250, 354", async () => {
    const c = await connect(bridge.port)
    try {
      await c.read()
      await c.command("EHLO client.test")
      c.send("MAIL FROM:<app@example.com>\r\nRCPT TO:<not an address>\r\nRCPT TO:<ok@example.net>\r\nDATA\r\n")
      expect(await c.read()).toBe("250 2.1.0 Ok")
      expect(await c.read()).toMatch(/^501 5\.1\.3 /)
      expect(await c.read()).toBe("250 2.1.5 Ok")
      expect(await c.read()).toMatch(/^354 /)
      c.send("Subject: partial\r\n\r\nx\r\n.\r\n")
      expect(await c.read()).toMatch(/^250 2\.0\.0 /)
    } finally {
      c.close()
    }
    const file = bridge.delivered().find((f) => f.toString("utf8").includes("Subject: partial"))
    expect(file?.toString("utf8")).toMatch(/^Delivered-To: ok@example\.net\r$/m)
    expect(file?.toString("utf8")).not.toMatch(/not an address/)
  })

  it("refuses DATA with 554 5.5.1 when every pipelined RCPT failed, and treats nothing after it as message", async () => {
    const c = await connect(bridge.port)
    try {
      await c.read()
      await c.command("EHLO client.test")
      c.send("MAIL FROM:<app@example.com>\r\nRCPT TO:<bad>\r\nDATA\r\nNOOP\r\n")
      expect(await c.read()).toBe("250 2.1.0 Ok")
      expect(await c.read()).toMatch(/^501 /)
      expect(await c.read()).toMatch(/^554 5\.5\.1 /)
      expect(await c.read()).toBe("250 2.0.0 Ok")
    } finally {
      c.close()
    }
  })

  it("sends the replies of one pipelined group in one write, not one per command", async () => {
    const s = await rawSocket(bridge.port)
    try {
      await s.until(/^220 .*\r\n$/)
      s.socket.write("EHLO client.test\r\n")
      await s.until(/250 DSN\r\n$|250 [A-Z0-9 ]+\r\n$/)
      s.reset()
      s.socket.write("MAIL FROM:<app@example.com>\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n")
      await s.until(/^354 .*\r\n$/m)
      expect(s.chunks.join("")).toMatch(
        /^250 2\.1\.0 Ok\r\n250 2\.1\.5 Ok\r\n250 2\.1\.5 Ok\r\n250 2\.1\.5 Ok\r\n354 [^\r\n]*\r\n$/
      )
      // One write on loopback arrives as one chunk: the five replies were sent together.
      expect(s.chunks).toHaveLength(1)
      s.reset()
      s.socket.write("Subject: batched\r\n\r\nx\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
      await s.until(/^221 .*\r\n$/m)
      expect(s.chunks.join("")).toMatch(/^250 2\.0\.0 Ok: queued as \w+\r\n250 2\.0\.0 Ok\r\n250 2\.0\.0 Ok\r\n221 [^\r\n]*\r\n$/)
    } finally {
      s.socket.destroy()
    }
  })

  it("delivers from swaks --pipeline", async () => {
    const r = await run("swaks", [
      "--server", `127.0.0.1:${bridge.port}`, "--pipeline",
      "--from", "app@example.com", "--to", "p1@example.net,p2@example.net", "--header", "Subject: swaks pipeline"
    ])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toMatch(/<- +250 2\.0\.0 Ok: queued as /)
    expect(bridge.delivered().filter((f) => f.toString("utf8").includes("Subject: swaks pipeline"))).toHaveLength(1)
  })
})
