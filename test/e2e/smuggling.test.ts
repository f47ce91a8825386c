// SMTP smuggling (DESIGN.md section 3): only CRLF "." CRLF ends DATA, and the bridge never writes a
// bare CR or bare LF. Every spelling of a fake terminator followed by a second, smuggled
// transaction must land inside ONE message, normalized, or (under "reject") be refused whole.
//
//   C: DATA
//   S: 354 End data with <CR><LF>.<CR><LF>
//   C: <headers><body><vector>MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nSmuggled\r\n.\r\nQUIT\r\n
//   S: 250 2.0.0 Ok: queued as ...      (exactly one)
//   S: 221 2.0.0 ...
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest"
import type { TestBridge } from "../support/bridge.ts"
import { startBridge, stripTrace } from "../support/bridge.ts"
import type { Client } from "../support/SmtpClient.ts"
import { connect } from "../support/SmtpClient.ts"
import { openData } from "../support/transcript.ts"
import { reference, referenceBdat } from "../support/dataReference.ts"

const headers = "From: <alice@example.org>\r\nTo: <bob@example.net>\r\nSubject: smuggling\r\n\r\n"
const body = "Body part 1\r\nsecond line"
const smuggled = "MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nSmuggled\r\n"
const terminator = ".\r\n"

const vectors: ReadonlyArray<readonly [name: string, vector: string]> = [
  ["LF . LF", "\n.\n"],
  ["LF . CRLF", "\n.\r\n"],
  ["CRLF . LF", "\r\n.\n"],
  ["CR . CRLF", "\r.\r\n"],
  ["CRLF . CR", "\r\n.\r"],
  ["CR . LF", "\r.\n"],
  ["LF . CR", "\n.\r"],
  ["CR . CR", "\r.\r"],
  ["CRLF . CR CRLF", "\r\n.\r\r\n"],
  ["LF CR . CRLF", "\n\r.\r\n"],
  ["LF LF . LF LF", "\n\n.\n\n"],
  ["CRLF . NUL CRLF", "\r\n.\0\r\n"],
  ["CRLF NUL . CRLF", "\r\n\0.\r\n"],
  ["CR NUL LF . CR NUL LF", "\r\0\n.\r\0\n"],
  ["CRLF . SP CRLF", "\r\n. \r\n"]
]

/** Files delivered since `before` was taken (Maildir names do not sort by time). */
const since = (before: ReadonlyArray<Buffer>, now: ReadonlyArray<Buffer>): Array<Buffer> => {
  const left = [...before]
  return now.filter((file) => {
    const i = left.findIndex((b) => b.equals(file))
    if (i === -1) return true
    left.splice(i, 1)
    return false
  })
}

const bareCrOrLf = /\r(?!\n)|(?<!\r)\n/

/** Replies the server sent after the 354, as separate replies. */
const afterData = (c: Client): Array<string> => {
  const lines = c.transcript().split("\n").filter((l) => l.startsWith("S: "))
  const at = lines.findIndex((l) => l.startsWith("S: 354"))
  return lines.slice(at + 1).map((l) => l.slice(3))
}

/** Sends bytes one TCP write at a time with a pause, so each lands in its own read. */
const trickle = async (c: Client, text: string) => {
  for (const ch of text) {
    c.send(Buffer.from(ch, "latin1"))
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

describe("the reference normalizer used by these specifications", () => {
  it("ends at the first CRLF.CRLF, unstuffs dots at CRLF line starts only and rewrites bare CR and LF", () => {
    expect(reference("a\n.\nb\r\n..c\r\n.\r\nQUIT\r\n")).toBe("a\r\n.\r\nb\r\n.c\r\n")
    expect(reference("x\r.\r\ny\r\n.\r\n")).toBe("x\r\n.\r\ny\r\n")
    expect(reference(".\r\n")).toBe("")
  })
})

describe("smuggling vectors under bareLineEndings: normalize", () => {
  // A bridge per test: one vector that breaks a session cannot fail the vectors after it.
  let bridge: TestBridge
  beforeEach(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"] })
  })
  afterEach(() => bridge.stop())

  for (const [name, vector] of vectors) {
    it(`${name}: one message, byte-exact and CRLF-only, one 250, no second transaction`, async () => {
      const before = bridge.delivered()
      const data = headers + body + vector + smuggled + terminator
      const c = await openData(bridge.port)
      c.send(Buffer.from(`${data}QUIT\r\n`, "latin1"))
      expect(await c.read()).toMatch(/^250 2\.0\.0 Ok: queued as \w+$/)
      expect(await c.read()).toMatch(/^221 2\.0\.0 /)
      await c.closed()
      expect(afterData(c)).toHaveLength(2)

      const files = since(before, bridge.delivered())
      expect(files).toHaveLength(1)
      const file = files[0]!
      expect(stripTrace(file)).toBe(reference(data))
      expect(file.toString("latin1")).not.toMatch(bareCrOrLf)
      expect(stripTrace(file)).toContain("MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nSmuggled\r\n")
    })
  }

  it(".LF as the very first line of the data is content, not a terminator", async () => {
    const before = bridge.delivered()
    const data = `.\n${smuggled}${terminator}`
    const c = await openData(bridge.port)
    c.send(Buffer.from(`${data}QUIT\r\n`, "latin1"))
    expect(await c.read()).toMatch(/^250 2\.0\.0 /)
    expect(await c.read()).toMatch(/^221 /)
    const files = since(before, bridge.delivered())
    expect(files).toHaveLength(1)
    expect(stripTrace(files[0]!)).toBe(reference(data))
    expect(files[0]!.toString("latin1")).not.toMatch(bareCrOrLf)
  })

  it("finds no terminator in a vector that arrives one byte per TCP segment", async () => {
    for (const [, vector] of [["LF . LF", "\n.\n"], ["CRLF . CR", "\r\n.\r"], ["CR . CRLF", "\r.\r\n"]] as const) {
      const before = bridge.delivered()
      const data = headers + body + vector + smuggled + terminator
      const c = await openData(bridge.port)
      c.send(Buffer.from(headers + body, "latin1"))
      await trickle(c, vector)
      c.send(Buffer.from(`${smuggled}${terminator}QUIT\r\n`, "latin1"))
      expect(await c.read()).toMatch(/^250 2\.0\.0 /)
      expect(await c.read()).toMatch(/^221 /)
      await c.closed()
      expect(afterData(c)).toHaveLength(2)
      const files = since(before, bridge.delivered())
      expect(files).toHaveLength(1)
      expect(stripTrace(files[0]!)).toBe(reference(data))
    }
  })

  it("BDAT: a bare LF inside a chunk is written as CRLF, dots untouched", async () => {
    const before = bridge.delivered()
    const chunk = `${headers}line one\n.\n${smuggled}last\r`
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    // C: BDAT n LAST + the chunk, then QUIT; S: 250, 221 and nothing else.
    c.send(Buffer.from(`BDAT ${Buffer.byteLength(chunk, "latin1")} LAST\r\n${chunk}QUIT\r\n`, "latin1"))
    expect(await c.read()).toMatch(/^250 2\.0\.0 Ok: queued as \w+$/)
    expect(await c.read()).toMatch(/^221 /)
    await c.closed()
    const files = since(before, bridge.delivered())
    expect(files).toHaveLength(1)
    expect(stripTrace(files[0]!)).toBe(referenceBdat(chunk))
    expect(files[0]!.toString("latin1")).not.toMatch(bareCrOrLf)
  })

  it("BDAT: a chunk ending in CR, then BDAT 0 LAST: the bare CR is written as CRLF", async () => {
    const before = bridge.delivered()
    const chunk = `${headers}last\r`
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    // C: BDAT n + the chunk, BDAT 0 LAST; S: 250 n octets, then 250 queued.
    c.send(Buffer.from(`BDAT ${Buffer.byteLength(chunk, "latin1")}\r\n${chunk}`, "latin1"))
    expect(await c.read()).toMatch(/^250 2\.0\.0 \d+ octets received$/)
    expect(await c.command("BDAT 0 LAST")).toMatch(/^250 2\.0\.0 Ok: queued as \w+$/)
    c.close()
    const files = since(before, bridge.delivered())
    expect(files).toHaveLength(1)
    expect(stripTrace(files[0]!)).toBe(referenceBdat(chunk))
    expect(files[0]!.toString("latin1")).not.toMatch(bareCrOrLf)
  })
})

describe("smuggling vectors under bareLineEndings: reject", () => {
  // A bridge per test: one vector that breaks a session cannot fail the vectors after it.
  let bridge: TestBridge
  beforeEach(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], bareLineEndings: "reject" })
  })
  afterEach(() => bridge.stop())

  for (const [name, vector] of vectors.filter(([, v]) => /\r(?!\n)|(?<!\r)\n/.test(v))) {
    it(`${name}: 550 5.6.0, nothing delivered, no second transaction`, async () => {
      const c = await openData(bridge.port)
      c.send(Buffer.from(`${headers}${body}${vector}${smuggled}${terminator}QUIT\r\n`, "latin1"))
      expect(await c.read()).toMatch(/^550 5\.6\.0 /)
      expect(await c.read()).toMatch(/^221 /)
      await c.closed()
      expect(afterData(c)).toHaveLength(2)
      expect(bridge.delivered()).toHaveLength(0)
    })
  }

  it("BDAT: a bare LF inside a chunk gives 550 5.6.0 and nothing delivered", async () => {
    const chunk = `${headers}line one\n.\n${smuggled}`
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    await c.command("MAIL FROM:<alice@example.org>")
    await c.command("RCPT TO:<bob@example.net>")
    c.send(Buffer.from(`BDAT ${Buffer.byteLength(chunk, "latin1")} LAST\r\n${chunk}QUIT\r\n`, "latin1"))
    expect(await c.read()).toMatch(/^550 5\.6\.0 /)
    expect(await c.read()).toMatch(/^221 /)
    expect(bridge.delivered()).toHaveLength(0)
  })

  it("BDAT: a chunk ending in CR, then BDAT 0 LAST: 550 5.6.0 and nothing delivered", async () => {
    const chunk = `${headers}last\r`
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    await c.command("MAIL FROM:<alice@example.org>")
    await c.command("RCPT TO:<bob@example.net>")
    c.send(Buffer.from(`BDAT ${Buffer.byteLength(chunk, "latin1")}\r\n${chunk}`, "latin1"))
    expect(await c.read()).toMatch(/^250 2\.0\.0 \d+ octets received$/)
    expect(await c.command("BDAT 0 LAST")).toMatch(/^550 5\.6\.0 /)
    c.close()
    expect(bridge.delivered()).toHaveLength(0)
  })

  it("still delivers a CRLF-only message", async () => {
    const c = await openData(bridge.port)
    c.send(`${headers}clean\r\n..dot\r\n.\r\nQUIT\r\n`)
    expect(await c.read()).toMatch(/^250 2\.0\.0 /)
    expect(await c.read()).toMatch(/^221 /)
    expect(bridge.delivered()).toHaveLength(1)
    expect(stripTrace(bridge.delivered()[0]!)).toBe(`${headers}clean\r\n.dot\r\n`)
  })
})
