import { describe, expect, it } from "@effect/vitest"
import * as Protocol from "../../../../plugins/milter/Protocol.ts"

const bytes = (...parts: Array<number | string>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => typeof p === "number" ? [p] : [...new TextEncoder().encode(p)]))

describe("milter frames", () => {
  it("encodes length (command included), command and data", () => {
    expect([...Protocol.frame("H", Protocol.cstring("client.test"))]).toEqual([0, 0, 0, 13, 72, ...new TextEncoder().encode("client.test"), 0])
  })

  it("reads frames split across chunks and several in one chunk", () => {
    const r = Protocol.reader()
    const two = [...Protocol.frame("c"), ...Protocol.frame("a")]
    r.push(Uint8Array.from(two.slice(0, 3)))
    expect(r.next()).toBeUndefined()
    r.push(Uint8Array.from(two.slice(3)))
    expect(r.next()).toMatchObject({ cmd: "c" })
    expect(r.next()).toMatchObject({ cmd: "a" })
    expect(r.next()).toBeUndefined()
  })

  it("refuses a 4 GB length from its 4 bytes, without waiting for or allocating the body", () => {
    const r = Protocol.reader()
    r.push(bytes(0xff, 0xff, 0xff, 0xff, "b"))
    expect(r.next()).toBe(`frame of 4294967295 bytes (the limit is ${Protocol.maxFrame})`)
  })

  it("refuses a zero length", () => {
    const r = Protocol.reader()
    r.push(bytes(0, 0, 0, 0))
    expect(r.next()).toMatch(/^frame of 0 bytes/)
  })

  it("turns a NUL inside a string into ? (no extra argument)", () => {
    expect([...Protocol.cstring("a\0b")]).toEqual([97, 63, 98, 0])
  })
})

describe("option negotiation", () => {
  const answer = (version: number, actions: number, steps: number, extra: Array<number | string> = []) => {
    const head = new Uint8Array(12)
    const view = new DataView(head.buffer)
    view.setUint32(0, version)
    view.setUint32(4, actions)
    view.setUint32(8, steps)
    return { cmd: "O", data: Uint8Array.from([...head, ...bytes(...extra)]) }
  }

  it("takes the milter's actions, steps and macro lists", () => {
    const n = Protocol.parseNegotiation(answer(6, Protocol.Action.AddHeaders, Protocol.Step.NrHeader, [0, 0, 0, 2, "{mail_addr} i", 0]))
    expect(n).toEqual({ version: 6, actions: 1, steps: 0x80, macros: new Map([["mail", ["{mail_addr}", "i"]]]) })
  })

  it("refuses steps the bridge did not offer (RCPT_REJ) and unknown versions", () => {
    expect(Protocol.parseNegotiation(answer(6, 0, Protocol.Step.RcptRej))).toMatch(/beyond those offered/)
    expect(Protocol.parseNegotiation(answer(7, 0, 0))).toMatch(/version 7/)
    expect(Protocol.parseNegotiation({ cmd: "O", data: new Uint8Array(4) })).toMatch(/shorter than 12/)
  })
})

describe("milter answers", () => {
  it("parses a multi-line reply code, %% unescaped, control characters blanked", () => {
    expect(Protocol.parseReplyCode("550-5.7.1 first\r\n550 5.7.1 100%% sure\x07")).toEqual({ _tag: "ReplyCode", code: 550, enhanced: "5.7.1", lines: ["first", "100% sure "] })
  })

  it("refuses a 2xx reply, mixed codes, an enhanced code of another class and a flood of lines", () => {
    expect(Protocol.parseReplyCode("250 2.0.0 ok")).toMatch(/without a 4xx or 5xx code/)
    expect(Protocol.parseReplyCode("550-a\r\n451 b")).toBe("reply lines with different codes")
    expect(Protocol.parseReplyCode("550 4.7.1 no")).toBe("reply 550 with enhanced code 4.7.1")
    expect(Protocol.parseReplyCode(Array.from({ length: 50 }, () => "550-x").join("\r\n"))).toBe("reply of 50 lines")
  })

  it("decodes modifications with their index", () => {
    const data = Uint8Array.from([0, 0, 0, 2, ...bytes("Subject", 0, "new", 0)])
    expect(Protocol.parseResponse({ cmd: "m", data })).toEqual({ _tag: "ChangeHeader", index: 2, name: "Subject", value: "new" })
    expect(Protocol.parseResponse({ cmd: "+", data: bytes("<c@example.net>", 0) })).toEqual({ _tag: "AddRcpt", address: "<c@example.net>" })
    expect(Protocol.parseResponse({ cmd: "h", data: bytes("X-A", 0) })).toBe("malformed SMFIR_ADDHEADER")
    expect(Protocol.parseResponse({ cmd: "Z", data: new Uint8Array(0) })).toBe("unknown answer \"Z\"")
  })
})
