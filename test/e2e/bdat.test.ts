/**
 * CHUNKING (RFC 3030): BDAT chunks are taken byte for byte (no dot-stuffing, no end-of-data
 * marker), always consumed even when refused, and checked against the size limit.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, stripTrace, type TestBridge } from "../support/bridge.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const bytes = (s: string): number => Buffer.byteLength(s, "utf8")

describe("BDAT", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], limits: { maxMessageSize: 1024 } })
  })
  afterAll(() => bridge.stop())

  const open = async (): Promise<Client> => {
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.test")).toMatch(/^250-CHUNKING$/m)
    return c
  }
  const transaction = async (c: Client): Promise<void> => {
    expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
  }
  const withSubject = (subject: string) => bridge.delivered().filter((f) => f.toString("utf8").includes(`Subject: ${subject}\r\n`))

  it("delivers chunks ending with BDAT LAST byte-exact: dots, '.' lines and 8-bit text untouched", async () => {
    const first = "Subject: chunked\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n.\r\n..two dots\r\n"
    const second = "Grüße, 你好\r\n.\r\nlast line\r\n"
    const c = await open()
    try {
      await transaction(c)
      // C: BDAT n / <n bytes>  S: 250 2.0.0 n octets received
      c.send(`BDAT ${bytes(first)}\r\n${first}`)
      expect(await c.read()).toBe(`250 2.0.0 ${bytes(first)} octets received`)
      c.send(Buffer.concat([Buffer.from(`BDAT ${bytes(second)} LAST\r\n`), Buffer.from(second, "utf8")]))
      expect(await c.read()).toMatch(/^250 2\.0\.0 Ok: queued as \w+$/)
    } finally {
      c.close()
    }
    const files = withSubject("chunked")
    expect(files).toHaveLength(1)
    expect(stripTrace(files[0]!)).toBe(first + second)
  })

  it("takes a chunk split over many writes and a command pipelined right after it", async () => {
    const body = "Subject: split\r\n\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    const c = await open()
    try {
      await transaction(c)
      c.send(`BDAT ${bytes(body)} LAST\r\n`)
      for (let i = 0; i < body.length; i += 7) {
        c.send(body.slice(i, i + 7))
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      expect(await c.read()).toMatch(/^250 2\.0\.0 Ok: queued as /)
      // BDAT LAST and NOOP in one write: the chunk ends exactly at its size.
      await transaction(c)
      const tight = "Subject: tight\r\n\r\nxyz\r\n"
      c.send(`BDAT ${bytes(tight)} LAST\r\n${tight}NOOP\r\n`)
      expect(await c.read()).toMatch(/^250 2\.0\.0 Ok: queued as /)
      expect(await c.read()).toBe("250 2.0.0 Ok")
    } finally {
      c.close()
    }
    expect(withSubject("split").map((f) => stripTrace(f))).toEqual([body])
  })

  it("refuses BDAT without MAIL with 503 5.5.1 but consumes the chunk: the next command works", async () => {
    const c = await open()
    try {
      // The 10-byte chunk is "QUIT\r\nQUIT": were it read as commands, the server would close.
      c.send("BDAT 10\r\nQUIT\r\nQUIT")
      expect(await c.read()).toMatch(/^503 5\.5\.1 /)
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
      c.send("BDAT 6 LAST\r\nRSET\r\n")
      expect(await c.read()).toMatch(/^503 5\.5\.1 /)
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    } finally {
      c.close()
    }
  })

  it("refuses BDAT after MAIL but before any RCPT with 554 5.5.1 and consumes the chunk", async () => {
    const c = await open()
    try {
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
      c.send("BDAT 6 LAST\r\nQUIT\r\n")
      expect(await c.read()).toMatch(/^554 5\.5\.1 /)
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    } finally {
      c.close()
    }
  })

  it("refuses a message over maxMessageSize (1024) with 552 5.3.4, delivers nothing, and ends the transaction", async () => {
    const chunk = `Subject: bdat too big\r\n\r\n${"z".repeat(600)}\r\n`
    const c = await open()
    try {
      await transaction(c)
      c.send(`BDAT ${bytes(chunk)}\r\n${chunk}`)
      expect(await c.read()).toMatch(/^250 2\.0\.0 /)
      c.send(`BDAT ${bytes(chunk)} LAST\r\n${chunk}`)
      expect(await c.read()).toBe("552 5.3.4 Message size exceeds fixed maximum message size")
      // The transaction is over: another BDAT is out of sequence, yet its bytes are still consumed.
      c.send("BDAT 6 LAST\r\nQUIT\r\n")
      expect(await c.read()).toMatch(/^503 5\.5\.1 /)
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    } finally {
      c.close()
    }
    expect(withSubject("bdat too big")).toHaveLength(0)
  })

  it("refuses a single oversized chunk with 552 5.3.4 and stays usable for a new transaction", async () => {
    const big = `Subject: one big chunk\r\n\r\n${"q".repeat(2000)}\r\n`
    const c = await open()
    try {
      await transaction(c)
      c.send(`BDAT ${bytes(big)} LAST\r\n${big}`)
      expect(await c.read()).toMatch(/^552 5\.3\.4 /)
      await transaction(c)
      const small = "Subject: after big\r\n\r\nok\r\n"
      c.send(`BDAT ${bytes(small)} LAST\r\n${small}`)
      expect(await c.read()).toMatch(/^250 2\.0\.0 Ok: queued as /)
    } finally {
      c.close()
    }
    expect(withSubject("one big chunk")).toHaveLength(0)
    expect(withSubject("after big")).toHaveLength(1)
  })

  it("refuses DATA after BDAT with 503 5.5.1; BDAT 0 LAST then completes the message", async () => {
    const chunk = "Subject: no mixing\r\n\r\nfirst chunk\r\n"
    const c = await open()
    try {
      await transaction(c)
      c.send(`BDAT ${bytes(chunk)}\r\n${chunk}`)
      expect(await c.read()).toMatch(/^250 2\.0\.0 /)
      expect(await c.command("DATA")).toMatch(/^503 5\.5\.1 /)
      // C: BDAT 0 LAST  (an empty last chunk ends the message)
      expect(await c.command("BDAT 0 LAST")).toMatch(/^250 2\.0\.0 Ok: queued as /)
    } finally {
      c.close()
    }
    expect(withSubject("no mixing").map((f) => stripTrace(f))).toEqual([chunk])
  })

  it("refuses RCPT during a BDAT transfer with 503 5.5.1", async () => {
    const chunk = "Subject: rcpt during bdat\r\n\r\nx\r\n"
    const c = await open()
    try {
      await transaction(c)
      c.send(`BDAT ${bytes(chunk)}\r\n${chunk}`)
      expect(await c.read()).toMatch(/^250 /)
      expect(await c.command("RCPT TO:<late@example.net>")).toMatch(/^503 5\.5\.1 /)
      expect(await c.command("BDAT 0 LAST")).toMatch(/^250 2\.0\.0 /)
    } finally {
      c.close()
    }
    const file = withSubject("rcpt during bdat")[0]
    expect(file?.toString("utf8")).not.toMatch(/late@example\.net/)
  })

  it("rejects a malformed BDAT with 501 5.5.4", async () => {
    const c = await open()
    try {
      expect(await c.command("BDAT")).toMatch(/^501 5\.5\.4 /)
      expect(await c.command("BDAT -1")).toMatch(/^501 5\.5\.4 /)
      expect(await c.command("BDAT 5 FIRST")).toMatch(/^501 5\.5\.4 /)
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    } finally {
      c.close()
    }
  })

  it("RSET after a chunk discards it; the next transaction starts clean", async () => {
    const c = await open()
    try {
      await transaction(c)
      const junk = "Subject: discarded\r\n\r\njunk\r\n"
      c.send(`BDAT ${bytes(junk)}\r\n${junk}`)
      expect(await c.read()).toMatch(/^250 /)
      expect(await c.command("RSET")).toBe("250 2.0.0 Ok")
      await transaction(c)
      const fresh = "Subject: fresh\r\n\r\nclean\r\n"
      c.send(`BDAT ${bytes(fresh)} LAST\r\n${fresh}`)
      expect(await c.read()).toMatch(/^250 2\.0\.0 Ok: queued as /)
    } finally {
      c.close()
    }
    expect(withSubject("discarded")).toHaveLength(0)
    expect(withSubject("fresh").map((f) => stripTrace(f))).toEqual(["Subject: fresh\r\n\r\nclean\r\n"])
  })
})
