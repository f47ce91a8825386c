import { describe, expect, it } from "@effect/vitest"
import * as Wire from "../../../src/dns/Wire.ts"

// A response built the way a server answers: the query echoed, QR set, then records whose owner
// is a compression pointer to the question name (offset 12).
const respond = (query: Uint8Array, rcode: number, answers: ReadonlyArray<{ type: number; ttl: number; data: Uint8Array }>) => {
  const questionEnd = query.byteLength - 11 // without the OPT record
  const parts: Array<Uint8Array> = [query.slice(0, questionEnd)]
  for (const a of answers) {
    const rr = new Uint8Array(12 + a.data.byteLength)
    const v = new DataView(rr.buffer)
    v.setUint16(0, 0xc00c)
    v.setUint16(2, a.type)
    v.setUint16(4, 1)
    v.setUint32(6, a.ttl)
    v.setUint16(10, a.data.byteLength)
    rr.set(a.data, 12)
    parts.push(rr)
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.byteLength
  }
  const v = new DataView(out.buffer)
  v.setUint16(2, 0x8180 | rcode)
  v.setUint16(6, answers.length)
  v.setUint16(10, 0)
  return out
}

const txtData = (...strings: Array<string>) => {
  const bytes = strings.map((s) => new TextEncoder().encode(s))
  const out = new Uint8Array(bytes.reduce((n, b) => n + 1 + b.byteLength, 0))
  let o = 0
  for (const b of bytes) {
    out[o++] = b.byteLength
    out.set(b, o)
    o += b.byteLength
  }
  return out
}

describe("DNS wire format", () => {
  it("encodes a recursive query with the name, type and an EDNS0 OPT record", () => {
    const q = Wire.encodeQuery(0x1234, "Example.TEST.", "TXT")
    expect(Array.from(q.slice(0, 12))).toEqual([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1])
    expect(new TextDecoder().decode(q.slice(12, 26))).toBe("\u0007example\u0004test\u0000")
    expect(Array.from(q.slice(26, 30))).toEqual([0, 16, 0, 1])
    expect(q.byteLength).toBe(30 + 11)
  })

  it("reads TXT strings of one record and keeps the TTL", () => {
    const q = Wire.encodeQuery(7, "example.test", "TXT")
    const r = Wire.decodeResponse(respond(q, 0, [{ type: 16, ttl: 3600, data: txtData("v=spf1 ", "-all") }]))
    expect(r).toMatchObject({ id: 7, rcode: 0, truncated: false, question: { name: "example.test", type: 16 } })
    expect(r.answers).toEqual([{ name: "example.test", ttl: 3600, data: { type: "TXT", value: ["v=spf1 ", "-all"] } }])
  })

  it("reads A, AAAA (RFC 5952 form) and MX with a compressed exchange", () => {
    const q = Wire.encodeQuery(1, "mx.test", "A")
    const mx = new Uint8Array([0, 10, 0xc0, 0x0c])
    const aaaa = new Uint8Array(16)
    aaaa.set([0x20, 0x01, 0x0d, 0xb8], 0)
    aaaa[15] = 1
    const r = Wire.decodeResponse(respond(q, 0, [
      { type: 1, ttl: 5, data: new Uint8Array([192, 0, 2, 1]) },
      { type: 28, ttl: 5, data: aaaa },
      { type: 15, ttl: 5, data: mx }
    ]))
    expect(r.answers.map((a) => a.data)).toEqual([
      { type: "A", value: "192.0.2.1" },
      { type: "AAAA", value: "2001:db8::1" },
      { type: "MX", value: { priority: 10, exchange: "mx.test" } }
    ])
  })

  it("reports NXDOMAIN and the truncation bit", () => {
    const q = Wire.encodeQuery(2, "nope.test", "TXT")
    const nx = respond(q, 3, [])
    expect(Wire.decodeResponse(nx).rcode).toBe(3)
    nx[2] = nx[2]! | 0x02
    expect(Wire.decodeResponse(nx).truncated).toBe(true)
  })

  it("refuses a message whose name pointers loop instead of looping forever", () => {
    const q = Wire.encodeQuery(3, "x.test", "TXT")
    const r = respond(q, 0, [])
    r[12] = 0xc0
    r[13] = 0x0c
    expect(() => Wire.decodeResponse(r)).toThrow(Wire.WireError)
  })

  it("refuses labels longer than 63 octets and names longer than 253", () => {
    expect(Wire.validName(`${"a".repeat(63)}.test`)).toBe(true)
    expect(Wire.validName(`${"a".repeat(64)}.test`)).toBe(false)
    expect(Wire.validName(Array(64).fill("abc").join("."))).toBe(false)
    expect(Wire.validName("a..test")).toBe(false)
  })
})
