/**
 * Postfix policy delegation (plugins/policy) through real SMTP sessions: against Debian's postgrey
 * (greylisting) and policyd-spf (SPF, with a dnsmasq zone), and against a hostile policy server
 * written here (answers forever, never answers, CR in its text, HOLD, extra lines).
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { type Dnsmasq, startDnsmasq, txt } from "../../support/dnsmasq.ts"
import { type PolicyService, policydSpfAvailable, postgreyAvailable, startPolicydSpf, startPostgrey } from "../../support/policyd.ts"
import { connect } from "../../support/SmtpClient.ts"
import { needTool } from "../../support/tools.ts"

/** C: EHLO, MAIL FROM; the RCPT reply (the client stays open for more). */
const rcpt = async (port: number, from: string, to: string, localAddress = "127.0.0.1") => {
  const c = await connect(port, { localAddress })
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.spf.test")).toMatch(/^250-/)
  expect(await c.command(`MAIL FROM:<${from}>`)).toBe("250 2.1.0 Ok")
  return { c, reply: await c.command(`RCPT TO:<${to}>`) }
}

const send = async (c: Awaited<ReturnType<typeof rcpt>>["c"], body = "Subject: hi\r\n\r\nhello\r\n") => {
  expect(await c.command("DATA")).toMatch(/^354 /)
  return c.command(`${body}.`)
}

describe.skipIf(!needTool("postgrey", postgreyAvailable()))("greylisting with postgrey", () => {
  let grey: PolicyService
  let bridge: TestBridge
  beforeAll(async () => {
    grey = await startPostgrey({ delay: 1 })
    bridge = await startBridge({ trust: ["127.0.0.0/8"], policy: `inet:127.0.0.1:${grey.port}` })
  }, 60_000)
  afterAll(async () => {
    await bridge?.stop()
    await grey?.stop()
  })

  it("defers a new triplet with 450 4.2.0, accepts the retry after the delay with postgrey's X-Greylist header", async () => {
    const first = await rcpt(bridge.port, "alice@example.org", "bob@example.net")
    expect(first.reply).toMatch(/^450 4\.2\.0 <bob@example\.net>: Recipient address rejected: Greylisted, see http/)
    first.c.close()
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    const retry = await rcpt(bridge.port, "alice@example.org", "bob@example.net")
    expect(retry.reply).toBe("250 2.1.5 Ok")
    expect(await send(retry.c)).toMatch(/^250 /)
    retry.c.close()
    const message = bridge.delivered().at(-1)!.toString("utf8")
    expect(message).toMatch(/^X-Greylist: delayed \d+ seconds by postgrey/m)
    expect(grey.output()).toMatch(/action=greylist, reason=new.*sender=alice@example\.org, recipient=bob@example\.net/)
  }, 20_000)
})

describe.skipIf(!needTool("policyd-spf", policydSpfAvailable()))("SPF with policyd-spf", () => {
  let dns: Dnsmasq
  let spf: PolicyService
  let bridge: TestBridge
  beforeAll(async () => {
    dns = await startDnsmasq({ zones: ["spf.test"], lines: [txt("spf.test", "v=spf1 ip4:127.0.0.2 -all")] })
    spf = await startPolicydSpf({ dnsPort: dns.port })
    bridge = await startBridge({ trust: ["127.0.0.0/8"], policy: `inet:127.0.0.1:${spf.port}` })
  }, 60_000)
  afterAll(async () => {
    await bridge?.stop()
    await spf?.stop()
    await dns?.stop()
  })

  it("refuses RCPT with policyd-spf's 550 5.7.23 when the sender's SPF fails for the client", async () => {
    const { c, reply } = await rcpt(bridge.port, "alice@spf.test", "bob@example.net", "127.0.0.1")
    expect(reply).toMatch(/^550 5\.7\.23 <bob@example\.net>: Recipient address rejected: Message rejected due to: SPF fail/)
    c.close()
  }, 20_000)

  it("accepts a client SPF allows, with policyd-spf's Received-SPF: Pass prepended", async () => {
    const { c, reply } = await rcpt(bridge.port, "alice@spf.test", "bob@example.net", "127.0.0.2")
    expect(reply).toBe("250 2.1.5 Ok")
    expect(await send(c)).toMatch(/^250 /)
    c.close()
    const message = bridge.delivered().at(-1)!.toString("utf8")
    expect(message).toMatch(/^Received-SPF: Pass \(mailfrom\) identity=mailfrom; client-ip=127\.0\.0\.2/m)
  }, 20_000)
})

/** A policy server under the test's control: `answer` gets each request's attributes. */
const fakePolicy = async (answer: (request: Map<string, string>, socket: net.Socket) => string | undefined, unixPath?: string) => {
  const requests: Array<Map<string, string>> = []
  let connections = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => {})
    let buffer = ""
    socket.setEncoding("utf8").on("data", (text: string) => {
      buffer += text
      let end: number
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const request = new Map(buffer.slice(0, end).split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as const))
        buffer = buffer.slice(end + 2)
        requests.push(request)
        const text = answer(request, socket)
        if (text !== undefined) socket.write(text)
      }
    })
  })
  await new Promise<void>((resolve) => (unixPath === undefined ? server.listen(0, "127.0.0.1", () => resolve()) : server.listen(unixPath, () => resolve())))
  return {
    port: unixPath === undefined ? (server.address() as net.AddressInfo).port : 0,
    requests,
    connections: () => connections,
    stop: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    })
  }
}

describe("a policy server that misbehaves", () => {
  it("sends Postfix's attributes once per RCPT, reuses the connection, and answers 554 5.7.1 for REJECT", async () => {
    const fake = await fakePolicy((r) => (r.get("recipient") === "no@example.net" ? "action=REJECT no such mailbox\n\n" : "action=DUNNO\n\n"))
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], policy: `inet:127.0.0.1:${fake.port}` })
    try {
      const { c, reply } = await rcpt(bridge.port, "alice@example.org", "bob@example.net")
      expect(reply).toBe("250 2.1.5 Ok")
      expect(await c.command("RCPT TO:<no@example.net>")).toBe("554 5.7.1 <no@example.net>: Recipient address rejected: no such mailbox")
      expect(await send(c)).toMatch(/^250 /)
      const again = await rcpt(bridge.port, "alice@example.org", "carol@example.net")
      expect(again.reply).toBe("250 2.1.5 Ok")
      c.close()
      again.c.close()
      expect(fake.connections()).toBe(1)
      const first = fake.requests[0]!
      expect(Object.fromEntries(first)).toMatchObject({
        request: "smtpd_access_policy", protocol_state: "RCPT", protocol_name: "ESMTP", client_address: "127.0.0.1",
        helo_name: "client.spf.test", sender: "alice@example.org", recipient: "bob@example.net", recipient_count: "0"
      })
      expect(fake.requests[1]!.get("recipient_count")).toBe("1")
      expect(fake.requests[1]!.get("instance")).toBe(first.get("instance"))
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 20_000)

  it("talks to a service on a unix socket (unix:/path) and answers its DEFER with 450 4.7.1", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-policy-unix-"))
    const socketPath = path.join(dir, "policy.sock")
    const fake = await fakePolicy(() => "action=DEFER come back later\n\n", socketPath)
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], policy: `unix:${socketPath}` })
    try {
      const { c, reply } = await rcpt(bridge.port, "alice@example.org", "bob@example.net")
      expect(reply).toBe("450 4.7.1 <bob@example.net>: Recipient address rejected: come back later")
      c.close()
      expect(fake.requests).toHaveLength(1)
    } finally {
      await bridge.stop()
      await fake.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 20_000)

  it("answers 451 4.3.5 after maxAnswer bytes from a server that answers forever, and does not reuse that connection", async () => {
    const fake = await fakePolicy((r, socket) => {
      if (r.get("recipient") === "ok@example.net") return "action=DUNNO\n\n"
      // A line a tick, 10 MB at most: the bridge must give up after maxAnswer.
      const line = `x=${"y".repeat(1000)}\n`
      let sent = 0
      const flood = () => {
        if (socket.destroyed || sent > 10 * 1024 * 1024) return
        sent += line.length
        socket.write(line)
        setImmediate(flood)
      }
      flood()
      return undefined
    })
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], policy: { server: `inet:127.0.0.1:${fake.port}`, timeout: "5 seconds" } })
    try {
      const started = Date.now()
      const { c, reply } = await rcpt(bridge.port, "alice@example.org", "flood@example.net")
      expect(reply).toBe("451 4.3.5 <flood@example.net>: Recipient address rejected: Server configuration problem")
      expect(Date.now() - started).toBeLessThan(4_000)
      expect(await c.command("RCPT TO:<ok@example.net>")).toBe("250 2.1.5 Ok")
      c.close()
      expect(fake.connections()).toBe(2)
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 20_000)

  it("answers 451 4.3.5 when the server never answers within the timeout", async () => {
    const fake = await fakePolicy(() => undefined)
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], policy: { server: `inet:127.0.0.1:${fake.port}`, timeout: "500 millis" } })
    try {
      const { c, reply } = await rcpt(bridge.port, "alice@example.org", "bob@example.net")
      expect(reply).toMatch(/^451 4\.3\.5 /)
      c.close()
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 20_000)

  it("keeps a CR, a NUL and a fake second reply in the server's text on one reply line", async () => {
    const fake = await fakePolicy(() => "action=REJECT bad\r\n250 2.1.5 Ok\x00\n\n")
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], policy: `inet:127.0.0.1:${fake.port}` })
    try {
      const { c, reply } = await rcpt(bridge.port, "alice@example.org", "bob@example.net")
      // The action line ends at the LF; "250 2.1.5 Ok" is another attribute line, never a reply.
      expect(reply).toBe("554 5.7.1 <bob@example.net>: Recipient address rejected: bad")
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
      c.close()
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 20_000)

  it("answers the default action for HOLD and DISCARD (no hold queue), and a DUNNO default fails open", async () => {
    const fake = await fakePolicy((r) => (r.get("recipient")!.startsWith("hold") ? "action=HOLD quarantine\n\n" : "action=DISCARD\n\n"))
    const bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      policy: { server: `inet:127.0.0.1:${fake.port}`, defaultAction: "DEFER_IF_PERMIT 4.7.0 not now" }
    })
    try {
      const { c, reply } = await rcpt(bridge.port, "alice@example.org", "hold@example.net")
      expect(reply).toBe("450 4.7.0 <hold@example.net>: Recipient address rejected: not now")
      expect(await c.command("RCPT TO:<discard@example.net>")).toMatch(/^450 4\.7\.0 /)
      c.close()
    } finally {
      await bridge.stop()
    }
    const open = await startBridge({ trust: ["127.0.0.0/8"], policy: { server: `inet:127.0.0.1:${fake.port}`, defaultAction: "DUNNO" } })
    await fake.stop()
    try {
      const { c, reply } = await rcpt(open.port, "alice@example.org", "bob@example.net")
      expect(reply).toBe("250 2.1.5 Ok")
      c.close()
    } finally {
      await open.stop()
    }
  }, 20_000)

  it("asks once at END-OF-MESSAGE with the size and refuses the message with the server's 552 5.3.4", async () => {
    const fake = await fakePolicy((r) => (Number(r.get("size")) > 100 ? "action=552 5.3.4 Quota exceeded\n\n" : "action=PREPEND X-Policy: small\n\n"))
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], policy: { server: `inet:127.0.0.1:${fake.port}`, stage: "end-of-message" } })
    try {
      const small = await rcpt(bridge.port, "alice@example.org", "bob@example.net")
      expect(small.reply).toBe("250 2.1.5 Ok")
      expect(await send(small.c)).toMatch(/^250 /)
      small.c.close()
      expect(bridge.delivered().at(-1)!.toString("utf8")).toMatch(/^X-Policy: small\r\n/m)
      const big = await rcpt(bridge.port, "alice@example.org", "bob@example.net")
      expect(await send(big.c, `Subject: big\r\n\r\n${"x".repeat(200)}\r\n`)).toBe("552 5.3.4 End-of-data rejected: Quota exceeded")
      big.c.close()
      expect(fake.requests.map((r) => r.get("protocol_state"))).toEqual(["END-OF-MESSAGE", "END-OF-MESSAGE"])
      expect(bridge.delivered()).toHaveLength(1)
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 20_000)
})
