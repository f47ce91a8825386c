// PROXY protocol v1 (text) and v2 (binary) headers, as HAProxy's `send-proxy` and `send-proxy-v2`
// write them (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt).
import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as ProxyProtocol from "../../../src/protocol/ProxyProtocol.ts"
import * as Cidr from "../../../src/util/Cidr.ts"
import { concat as concatAll, utf8 } from "./helpers.ts"

const text = utf8
const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => concatAll(parts)

const signature = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]
const be16 = (n: number): Array<number> => [(n >> 8) & 0xff, n & 0xff]
const v4Bytes = (a: string): Array<number> => a.split(".").map(Number)
const v6Bytes = (groups: ReadonlyArray<number>): Array<number> => groups.flatMap(be16)

/** A v2 header: signature, version 2 and `command`, `family`, the address block, then `tlvs`. */
const v2 = (options: {
  readonly command?: number
  readonly family: number
  readonly block: ReadonlyArray<number>
  readonly tlvs?: ReadonlyArray<number>
  readonly version?: number
}): Uint8Array => {
  const body = [...options.block, ...(options.tlvs ?? [])]
  return Uint8Array.from([
    ...signature,
    ((options.version ?? 2) << 4) | (options.command ?? 1),
    options.family,
    ...be16(body.length),
    ...body
  ])
}

const v2Tcp4 = (src: string, dst: string, sport: number, dport: number, tlvs: ReadonlyArray<number> = []) =>
  v2({ family: 0x11, block: [...v4Bytes(src), ...v4Bytes(dst), ...be16(sport), ...be16(dport)], tlvs })

const v2Tcp6 = (src: ReadonlyArray<number>, dst: ReadonlyArray<number>, sport: number, dport: number) =>
  v2({ family: 0x21, block: [...v6Bytes(src), ...v6Bytes(dst), ...be16(sport), ...be16(dport)] })

const ok = (parsed: ProxyProtocol.Parsed) => {
  if (parsed._tag !== "Ok") throw new Error(`expected Ok, got ${JSON.stringify(parsed)}`)
  return parsed
}

describe("ProxyProtocol.parse, v1 (send-proxy)", () => {
  it("reads a TCP4 line: source, destination and the bytes it used", () => {
    const line = "PROXY TCP4 192.0.2.7 198.51.100.1 51000 587\r\n"
    expect(ProxyProtocol.parse(text(line))).toEqual({
      _tag: "Ok",
      source: { address: "192.0.2.7", port: 51000 },
      destination: { address: "198.51.100.1", port: 587 },
      consumed: line.length
    })
  })

  it("reads a TCP6 line", () => {
    const line = "PROXY TCP6 2001:db8::7 2001:db8::1 40000 25\r\n"
    const parsed = ok(ProxyProtocol.parse(text(line)))
    expect(parsed.source).toEqual({ address: "2001:db8::7", port: 40000 })
    expect(parsed.destination).toEqual({ address: "2001:db8::1", port: 25 })
    expect(parsed.consumed).toBe(line.length)
  })

  it("writes TCP6 addresses in canonical form, IPv4-mapped ones as IPv4, as a v2 header gives them", () => {
    const parsed = ok(ProxyProtocol.parse(text("PROXY TCP6 2001:DB8:0:0:0:0:0:7 ::ffff:198.51.100.1 40000 25\r\n")))
    expect(parsed.source?.address).toBe("2001:db8::7")
    expect(parsed.destination?.address).toBe("198.51.100.1")
  })

  it("takes PROXY UNKNOWN (a health check, or a family the balancer cannot name) with no address: the socket's own applies", () => {
    for (const line of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n"]) {
      expect(ProxyProtocol.parse(text(line))).toEqual({ _tag: "Ok", source: undefined, destination: undefined, consumed: line.length })
    }
  })

  it("leaves the bytes after the CRLF (the client's first command) unconsumed", () => {
    const line = "PROXY TCP4 192.0.2.7 198.51.100.1 51000 587\r\n"
    const parsed = ok(ProxyProtocol.parse(text(`${line}EHLO client.example\r\n`)))
    expect(parsed.consumed).toBe(line.length)
  })

  it("accepts the longest legal line (107 bytes with CRLF)", () => {
    const a = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    const line = `PROXY TCP6 ${a} ${a} 65535 65535\r\n`
    expect(line.length).toBe(104)
    expect(ok(ProxyProtocol.parse(text(line))).consumed).toBe(104)
  })

  it("refuses a line with no CRLF within 107 bytes (no unbounded buffering)", () => {
    expect(ProxyProtocol.parse(text(`PROXY TCP4 ${"1".repeat(101)}`))).toMatchObject({ _tag: "Invalid", reason: "PROXY v1 line too long" })
    expect(ProxyProtocol.parse(text(`PROXY TCP4 ${"1".repeat(500)}\r\n`))).toMatchObject({ _tag: "Invalid" })
  })

  it("refuses a line ending in a bare LF once 107 bytes have come without CRLF", () => {
    const bare = "PROXY TCP4 192.0.2.7 198.51.100.1 51000 587\nEHLO x\n"
    expect(ProxyProtocol.parse(text(bare))._tag).toBe("Incomplete")
    expect(ProxyProtocol.parse(text(bare.padEnd(107, "x")))._tag).toBe("Invalid")
  })

  it.each([
    ["a port above 65535", "PROXY TCP4 192.0.2.7 198.51.100.1 65536 25\r\n"],
    ["a negative port", "PROXY TCP4 192.0.2.7 198.51.100.1 -1 25\r\n"],
    ["a port that is not a number", "PROXY TCP4 192.0.2.7 198.51.100.1 http 25\r\n"],
    ["an empty port", "PROXY TCP4 192.0.2.7 198.51.100.1  25\r\n"],
    ["an IPv4 octet above 255", "PROXY TCP4 192.0.2.256 198.51.100.1 51000 25\r\n"],
    ["an IPv6 address in a TCP4 line", "PROXY TCP4 2001:db8::7 198.51.100.1 51000 25\r\n"],
    ["an IPv4 address in a TCP6 line", "PROXY TCP6 192.0.2.7 2001:db8::1 51000 25\r\n"],
    ["a TCP6 address with two ::", "PROXY TCP6 2001:db8::7::1 2001:db8::1 51000 25\r\n"],
    ["a TCP6 address that is only colons", "PROXY TCP6 ::: 2001:db8::1 51000 25\r\n"],
    ["a TCP6 address with nine groups", "PROXY TCP6 1:2:3:4:5:6:7:8:9 2001:db8::1 51000 25\r\n"],
    ["an IPv4 octet with a leading zero", "PROXY TCP4 192.0.2.07 198.51.100.1 51000 25\r\n"],
    ["a host name instead of an address", "PROXY TCP4 client.example 198.51.100.1 51000 25\r\n"],
    ["an unknown protocol", "PROXY UDP4 192.0.2.7 198.51.100.1 51000 25\r\n"],
    ["a missing field", "PROXY TCP4 192.0.2.7 198.51.100.1 51000\r\n"],
    ["an extra field", "PROXY TCP4 192.0.2.7 198.51.100.1 51000 25 x\r\n"],
    ["two spaces between fields", "PROXY TCP4  192.0.2.7 198.51.100.1 51000 25\r\n"],
    ["nothing after PROXY", "PROXY \r\n"]
  ])("refuses %s", (_, line) => {
    expect(ProxyProtocol.parse(text(line))._tag).toBe("Invalid")
  })

  it.each([
    ["an SMTP command", "EHLO client.example\r\n"],
    ["lower-case proxy", "proxy TCP4 192.0.2.7 198.51.100.1 51000 25\r\n"],
    ["PROXY without its space", "PROXYTCP4 192.0.2.7 198.51.100.1 51000 25\r\n"],
    ["a TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"]
  ])("refuses %s as not a PROXY header", (_, start) => {
    expect(ProxyProtocol.parse(text(start))).toEqual({ _tag: "Invalid", reason: "not a PROXY header" })
  })

  it("says Invalid as soon as the first byte differs, without waiting for more", () => {
    expect(ProxyProtocol.parse(text("E"))._tag).toBe("Invalid")
    expect(ProxyProtocol.parse(text("PROXX"))._tag).toBe("Invalid")
  })
})

describe("ProxyProtocol.parse, v2 (send-proxy-v2)", () => {
  it("reads PROXY over TCP/IPv4: addresses, ports, and consumed = 16 + length", () => {
    const header = v2Tcp4("192.0.2.7", "198.51.100.1", 51000, 587)
    expect(header.byteLength).toBe(28)
    expect(ProxyProtocol.parse(header)).toEqual({
      _tag: "Ok",
      source: { address: "192.0.2.7", port: 51000 },
      destination: { address: "198.51.100.1", port: 587 },
      consumed: 28
    })
  })

  it("reads PROXY over TCP/IPv6 and writes the addresses in canonical form", () => {
    const header = v2Tcp6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7], [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 40000, 25)
    expect(header.byteLength).toBe(52)
    expect(ProxyProtocol.parse(header)).toEqual({
      _tag: "Ok",
      source: { address: "2001:db8::7", port: 40000 },
      destination: { address: "2001:db8::1", port: 25 },
      consumed: 52
    })
  })

  it("writes IPv4-mapped IPv6 addresses (::ffff:192.0.2.7) as plain IPv4, like the socket's own", () => {
    const header = v2Tcp6([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207], [0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6401], 1, 65535)
    const parsed = ok(ProxyProtocol.parse(header))
    expect(parsed.source).toEqual({ address: "192.0.2.7", port: 1 })
    expect(parsed.destination).toEqual({ address: "198.51.100.1", port: 65535 })
  })

  it("takes LOCAL (HAProxy's own health checks) with no address: the socket's own applies", () => {
    const header = v2({ command: 0, family: 0x00, block: [] })
    expect(ProxyProtocol.parse(header)).toEqual({ _tag: "Ok", source: undefined, destination: undefined, consumed: 16 })
  })

  it("skips a LOCAL header's address block too", () => {
    const header = v2({ command: 0, family: 0x11, block: [127, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 2] })
    expect(ProxyProtocol.parse(header)).toEqual({ _tag: "Ok", source: undefined, destination: undefined, consumed: 28 })
  })

  it("takes PROXY with an UNSPEC or unix-socket family as no address", () => {
    expect(ok(ProxyProtocol.parse(v2({ family: 0x00, block: [] }))).source).toBeUndefined()
    const unix = v2({ family: 0x31, block: new Array<number>(216).fill(0) })
    expect(ProxyProtocol.parse(unix)).toMatchObject({ _tag: "Ok", source: undefined, consumed: 16 + 216 })
  })

  it("consumes TLVs after the address block (e.g. PP2_TYPE_AUTHORITY) as part of the header", () => {
    const authority = [0x02, ...be16(11), ...text("mx.example.")]
    const header = v2Tcp4("192.0.2.7", "198.51.100.1", 51000, 587, authority)
    const parsed = ok(ProxyProtocol.parse(header))
    expect(parsed.consumed).toBe(28 + authority.length)
    expect(parsed.source).toEqual({ address: "192.0.2.7", port: 51000 })
  })

  it("leaves the bytes after the header (the client's first command, or a TLS ClientHello) unconsumed", () => {
    const header = v2Tcp4("192.0.2.7", "198.51.100.1", 51000, 587)
    const parsed = ok(ProxyProtocol.parse(concat(header, text("EHLO client.example\r\n"))))
    expect(parsed.consumed).toBe(header.byteLength)
    const hello = Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00)
    expect(ok(ProxyProtocol.parse(concat(header, hello))).consumed).toBe(header.byteLength)
  })

  it("refuses an unknown command (neither LOCAL nor PROXY)", () => {
    const header = v2({ command: 2, family: 0x11, block: new Array<number>(12).fill(1) })
    expect(ProxyProtocol.parse(header)).toEqual({ _tag: "Invalid", reason: "unknown PROXY v2 command" })
  })

  it.each([1, 3, 0xf])("refuses version %i", (version) => {
    const header = v2({ version, family: 0x11, block: new Array<number>(12).fill(1) })
    expect(ProxyProtocol.parse(header)).toEqual({ _tag: "Invalid", reason: "unsupported PROXY version" })
  })

  it("refuses an IPv4 block shorter than 12 bytes and an IPv6 block shorter than 36", () => {
    expect(ProxyProtocol.parse(v2({ family: 0x11, block: new Array<number>(11).fill(1) }))._tag).toBe("Invalid")
    expect(ProxyProtocol.parse(v2({ family: 0x21, block: new Array<number>(35).fill(1) }))._tag).toBe("Invalid")
  })

  it("refuses a declared length no balancer sends as soon as the 16 fixed bytes are in", () => {
    const fixed = Uint8Array.from([...signature, 0x21, 0x11, 0xff, 0xff])
    expect(ProxyProtocol.parse(fixed)).toEqual({ _tag: "Invalid", reason: "PROXY v2 header too long" })
  })

  it("refuses a corrupted signature at the first wrong byte", () => {
    const header = v2Tcp4("192.0.2.7", "198.51.100.1", 51000, 587)
    for (let i = 1; i < signature.length; i++) {
      const bad = header.slice()
      bad[i] = bad[i]! ^ 0x40
      expect(ProxyProtocol.parse(bad.subarray(0, i + 1)), `byte ${i}`).toEqual({ _tag: "Invalid", reason: "not a PROXY header" })
    }
  })
})

const octet = fc.integer({ min: 0, max: 255 })
const portArb = fc.integer({ min: 0, max: 65535 })
const ipv4Arb = fc.tuple(octet, octet, octet, octet).map((o) => o.join("."))
const ipv6Arb = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })

/** A valid header of either version with its expected source, as HAProxy could write it. */
const headerArb: fc.Arbitrary<{ readonly bytes: Uint8Array; readonly source: ProxyProtocol.Endpoint | undefined }> = fc.oneof(
  fc.tuple(ipv4Arb, ipv4Arb, portArb, portArb).map(([s, d, sp, dp]) => ({
    bytes: text(`PROXY TCP4 ${s} ${d} ${sp} ${dp}\r\n`),
    source: { address: s, port: sp }
  })),
  fc.tuple(ipv6Arb, ipv6Arb, portArb, portArb).map(([s, d, sp, dp]) => {
    const written = s.map((g) => g.toString(16)).join(":")
    return {
      bytes: text(`PROXY TCP6 ${written} ${d.map((g) => g.toString(16)).join(":")} ${sp} ${dp}\r\n`),
      source: { address: Cidr.canonical(written)!, port: sp }
    }
  }),
  fc.constant({ bytes: text("PROXY UNKNOWN\r\n"), source: undefined }),
  fc.tuple(ipv4Arb, ipv4Arb, portArb, portArb, fc.uint8Array({ maxLength: 64 })).map(([s, d, sp, dp, tlv]) => ({
    bytes: v2Tcp4(s, d, sp, dp, [...tlv]),
    source: { address: s, port: sp }
  })),
  fc.tuple(fc.constantFrom(0x00, 0x11, 0x21), fc.uint8Array({ maxLength: 64 })).map(([family, block]) => ({
    bytes: v2({ command: 0, family, block: [...block] }),
    source: undefined
  }))
)

describe("ProxyProtocol.parse, properties", () => {
  it("says Incomplete for every proper prefix of a valid header, and Ok with consumed = its length for the whole", () => {
    fc.assert(
      fc.property(headerArb, ({ bytes, source }) => {
        for (let n = 0; n < bytes.byteLength; n++) {
          expect(ProxyProtocol.parse(bytes.subarray(0, n)), `prefix of ${n} bytes`).toEqual({ _tag: "Incomplete" })
        }
        const parsed = ok(ProxyProtocol.parse(bytes))
        expect(parsed.consumed).toBe(bytes.byteLength)
        expect(parsed.source).toEqual(source)
      }),
      { numRuns: 200 }
    )
  })

  it("never consumes the bytes that follow a header, whatever they are", () => {
    fc.assert(
      fc.property(headerArb, fc.uint8Array({ minLength: 1, maxLength: 200 }), ({ bytes }, rest) => {
        expect(ok(ProxyProtocol.parse(concat(bytes, rest))).consumed).toBe(bytes.byteLength)
      }),
      { numRuns: 200 }
    )
  })

  it("answers any input without throwing, and Ok only with consumed within the input", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.uint8Array({ maxLength: 120 }).map((b) => concat(Uint8Array.from(signature), b)),
          fc.string({ maxLength: 120 }).map((s) => text(`PROXY ${s}`))
        ),
        (input) => {
          const parsed = ProxyProtocol.parse(input)
          if (parsed._tag === "Ok") {
            expect(parsed.consumed).toBeGreaterThan(0)
            expect(parsed.consumed).toBeLessThanOrEqual(input.byteLength)
          }
        }
      ),
      { numRuns: 500 }
    )
  })
})
