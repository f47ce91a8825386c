/**
 * Recipient verification upstream (`?verify=rcpt`, `verifyRecipients`): the bridge asks the relay
 * about each RCPT before answering, against Dovecot LMTP, a private Postfix with
 * relay_recipient_maps, and upstreams written here that fail in the ways outages do.
 */
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { type Dovecot, dovecotAvailable, startDovecot } from "../../support/dovecot.ts"
import { postfixAvailable, type PostfixRelay, startPostfixRelay } from "../../support/postfixRelay.ts"
import { connect } from "../../support/SmtpClient.ts"
import { needTool } from "../../support/tools.ts"

/** C: EHLO, MAIL, then each RCPT; their replies. */
const rcpts = async (port: number, recipients: ReadonlyArray<string>) => {
  const c = await connect(port, { timeoutMs: 20_000 })
  try {
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.test")).toMatch(/^250-/)
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    const replies: Array<string> = []
    for (const r of recipients) replies.push(await c.command(`RCPT TO:<${r}>`))
    return replies
  } finally {
    c.close()
  }
}

describe.skipIf(!needTool("dovecot", dovecotAvailable()))("against Dovecot LMTP", () => {
  let dovecot: Dovecot
  let bridge: TestBridge
  beforeAll(async () => {
    dovecot = await startDovecot({ users: ["known"] })
    bridge = await startBridge({ trust: ["127.0.0.0/8"], relay: `lmtp://127.0.0.1:${dovecot.port}?verify=rcpt` })
  }, 30_000)
  afterAll(async () => {
    await bridge?.stop()
    await dovecot?.stop()
  })

  it("refuses an unknown user at RCPT with Dovecot's 550 5.1.1, accepts a known one, and delivers to it", async () => {
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.test")).toMatch(/^250-/)
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<nobody@example.net>")).toMatch(/^550 5\.1\.1 .*User doesn't exist/)
    expect(await c.command("RCPT TO:<known@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    expect(await c.command("Subject: hi\r\n\r\nhello\r\n.")).toMatch(/^250 /)
    c.close()
    expect(dovecot.delivered("known")).toHaveLength(1)
  }, 20_000)

  it("answers from its caches while Dovecot is down, and 451 4.4.1 for a recipient it has not seen, never 550", async () => {
    expect(await rcpts(bridge.port, ["known@example.net", "nobody@example.net"])).toEqual([
      "250 2.1.5 Ok",
      expect.stringMatching(/^550 5\.1\.1 /)
    ])
    await dovecot.stop()
    expect(await rcpts(bridge.port, ["known@example.net", "nobody@example.net", "other@example.net"])).toEqual([
      "250 2.1.5 Ok",
      expect.stringMatching(/^550 5\.1\.1 /),
      "451 4.4.1 Recipient verification is unavailable, try again later"
    ])
  }, 20_000)
})

describe.skipIf(!needTool("postfix", postfixAvailable()))("against Postfix with relay_recipient_maps", () => {
  let postfix: PostfixRelay
  let bridge: TestBridge
  beforeAll(async () => {
    postfix = await startPostfixRelay({ domain: "relay.test", recipients: ["known@relay.test"] })
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      transports: { upstream: { type: "smtp", url: `smtp://127.0.0.1:${postfix.port}?tls=none`, verifyRecipients: true } },
      defaultTransport: "upstream"
    })
  }, 60_000)
  afterAll(async () => {
    await bridge?.stop()
    await postfix?.stop()
  }, 60_000)

  it("refuses a recipient Postfix does not know with its 550 5.1.1 text and accepts a listed one", async () => {
    expect(await rcpts(bridge.port, ["stranger@relay.test", "known@relay.test"])).toEqual([
      expect.stringMatching(/^550 5\.1\.1 <stranger@relay\.test>: Recipient address rejected: User unknown in relay recipient table/),
      "250 2.1.5 Ok"
    ])
  }, 30_000)
})

/** An SMTP upstream under the test's control: `answer(command)` gives each reply line, or undefined for silence. */
const fakeUpstream = async (answer: (command: string) => string | undefined) => {
  const commands: Array<string> = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => {})
    socket.write("220 fake ESMTP\r\n")
    let buffer = ""
    socket.setEncoding("latin1").on("data", (text: string) => {
      buffer += text
      let end: number
      while ((end = buffer.indexOf("\r\n")) !== -1) {
        const line = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        commands.push(line)
        const reply = /^(EHLO|LHLO)/i.test(line) ? "250 fake" : /^QUIT/i.test(line) ? "221 bye" : answer(line)
        if (reply !== undefined) socket.write(`${reply}\r\n`)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  return {
    port: (server.address() as net.AddressInfo).port,
    commands,
    stop: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    })
  }
}

describe("an upstream in trouble", () => {
  it("gives 451 4.4.1, never 550, when the upstream refuses the probe's MAIL FROM:<> with 550", async () => {
    const fake = await fakeUpstream((c) => (c.startsWith("MAIL") ? "550 5.7.1 Service unavailable" : "250 2.0.0 Ok"))
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], relay: `smtp://127.0.0.1:${fake.port}?tls=none&verify=rcpt` })
    try {
      expect(await rcpts(bridge.port, ["bob@example.net"])).toEqual(["451 4.4.1 Recipient verification is unavailable, try again later"])
      expect(fake.commands).not.toContain("RCPT TO:<bob@example.net>")
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 20_000)

  it("passes on a 550 5.7.1 for everything but does not remember it: once the upstream recovers, the recipient is accepted", async () => {
    let outage = true
    const fake = await fakeUpstream((c) => (c.startsWith("RCPT") && outage ? "550 5.7.1 Access denied (backend down)" : "250 2.0.0 Ok"))
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], relay: `smtp://127.0.0.1:${fake.port}?tls=none&verify=rcpt` })
    try {
      expect(await rcpts(bridge.port, ["bob@example.net"])).toEqual(["550 5.7.1 Access denied (backend down)"])
      outage = false
      expect(await rcpts(bridge.port, ["bob@example.net"])).toEqual(["250 2.1.5 Ok"])
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 20_000)

  it("gives 451 4.4.1 within the command timeout when the upstream never answers RCPT, and caches neither way", async () => {
    let silent = true
    const fake = await fakeUpstream((c) => (c.startsWith("RCPT") && silent ? undefined : "250 2.0.0 Ok"))
    const bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      transports: { default: { type: "smtp", url: `smtp://127.0.0.1:${fake.port}?tls=none&verify=rcpt`, timeouts: { command: "1 second" } } }
    })
    try {
      const started = Date.now()
      expect(await rcpts(bridge.port, ["bob@example.net"])).toEqual(["451 4.4.1 Recipient verification is unavailable, try again later"])
      expect(Date.now() - started).toBeLessThan(5_000)
      silent = false
      expect(await rcpts(bridge.port, ["bob@example.net"])).toEqual(["250 2.1.5 Ok"])
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 20_000)

  it("keys the cache by the exact address: a refused address never answers for another, and RSET follows each probe", async () => {
    const fake = await fakeUpstream((c) => (c === "RCPT TO:<Bob@example.net>" ? "550 5.1.1 No such user" : "250 2.0.0 Ok"))
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], relay: `smtp://127.0.0.1:${fake.port}?tls=none&verify=rcpt` })
    try {
      expect(await rcpts(bridge.port, ["Bob@example.net", "bob@example.net", "Bob@EXAMPLE.net"])).toEqual([
        "550 5.1.1 No such user",
        "250 2.1.5 Ok",
        "550 5.1.1 No such user"
      ])
      // The third came from the cache: two probes, each MAIL FROM:<>, RCPT, RSET.
      expect(fake.commands.filter((c) => !/^(EHLO|QUIT)/.test(c))).toEqual([
        "MAIL FROM:<>", "RCPT TO:<Bob@example.net>", "RSET", "MAIL FROM:<>", "RCPT TO:<bob@example.net>", "RSET"
      ])
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 20_000)

  it("never probes for a client that may not relay (no address harvesting): 530 at MAIL", async () => {
    const fake = await fakeUpstream(() => "250 2.0.0 Ok")
    const bridge = await startBridge({ relay: `smtp://127.0.0.1:${fake.port}?tls=none&verify=rcpt` })
    try {
      const c = await connect(bridge.port)
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO client.test")).toMatch(/^250-/)
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("530 5.7.0 Authentication required")
      expect(await c.command("RCPT TO:<bob@example.net>")).toMatch(/^503 /)
      c.close()
      expect(fake.commands).toEqual([])
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 20_000)
})
