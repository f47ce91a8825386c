import { describe, expect, it } from "@effect/vitest"
import * as Resp from "../../../src/ratelimit/Resp.ts"

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
const bytes = (s: string) => new TextEncoder().encode(s)

describe("Resp.encode", () => {
  it("writes a command as an array of bulk strings with byte lengths", () => {
    expect(text(Resp.encode(["GET", "k"]))).toBe("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
    expect(text(Resp.encode(["SET", "ü\r\n", 5]))).toBe("*3\r\n$3\r\nSET\r\n$4\r\nü\r\n\r\n$1\r\n5\r\n")
  })
})

describe("Resp.decoder", () => {
  it("reads every reply type", () => {
    const d = Resp.decoder()
    d.push(bytes("+OK\r\n-ERR no\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n*1\r\n$0\r\n\r\n*-1\r\n"))
    expect(d.next()).toEqual({ _tag: "Simple", value: "OK" })
    expect(d.next()).toEqual({ _tag: "Error", value: "ERR no" })
    expect(d.next()).toEqual({ _tag: "Integer", value: 42 })
    expect(d.next()).toEqual({ _tag: "Bulk", value: "abc" })
    expect(d.next()).toEqual({ _tag: "Bulk", value: null })
    expect(d.next()).toEqual({
      _tag: "Array",
      value: [{ _tag: "Integer", value: 1 }, { _tag: "Array", value: [{ _tag: "Bulk", value: "" }] }]
    })
    expect(d.next()).toEqual({ _tag: "Array", value: null })
    expect(d.next()).toBeUndefined()
  })

  it("waits for the rest of a reply split at any byte", () => {
    const wire = "*2\r\n$5\r\nhe\r\no\r\n:-7\r\n"
    for (let cut = 1; cut < wire.length; cut++) {
      const d = Resp.decoder()
      d.push(bytes(wire.slice(0, cut)))
      const early = d.next()
      d.push(bytes(wire.slice(cut)))
      const value = early ?? d.next()
      expect(value).toEqual({ _tag: "Array", value: [{ _tag: "Bulk", value: "he\r\no" }, { _tag: "Integer", value: -7 }] })
    }
  })

  it("throws ProtocolViolation on bytes that are not RESP2", () => {
    const d = Resp.decoder()
    d.push(bytes("HTTP/1.1 400\r\n"))
    expect(() => d.next()).toThrow(Resp.ProtocolViolation)
  })
})
