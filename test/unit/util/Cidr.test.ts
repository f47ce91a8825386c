import { describe, expect, it } from "@effect/vitest"
import * as Cidr from "../../../src/util/Cidr.ts"

const net = (text: string): Cidr.Cidr => {
  const cidr = Cidr.parse(text)
  if (cidr === undefined) throw new Error(`test network ${text} does not parse`)
  return cidr
}

describe("Cidr.parse", () => {
  it("reads an IPv4 network and clears host bits", () => {
    expect(Cidr.format(net("10.1.2.3/8"))).toBe("10.0.0.0/8")
    expect(net("192.0.2.0/24")).toEqual({ family: 4, network: 0xc0000200n, prefix: 24 })
  })

  it("reads a bare address as a /32 or /128", () => {
    expect(Cidr.format(net("192.0.2.7"))).toBe("192.0.2.7/32")
    expect(Cidr.format(net("::1"))).toBe("::1/128")
  })

  it("reads IPv6 networks in every spelling", () => {
    expect(Cidr.format(net("2001:DB8::/32"))).toBe("2001:db8::/32")
    expect(Cidr.format(net("2001:db8:0:0:0:0:0:1/128"))).toBe("2001:db8::1/128")
    expect(Cidr.format(net("::/0"))).toBe("::/0")
    expect(Cidr.format(net("64:ff9b::192.0.2.1"))).toBe("64:ff9b::c000:201/128")
  })

  it("reads an IPv4-mapped network as the IPv4 network", () => {
    expect(Cidr.format(net("::ffff:10.0.0.0/104"))).toBe("10.0.0.0/8")
    expect(Cidr.format(net("::ffff:192.0.2.1"))).toBe("192.0.2.1/32")
  })

  it("refuses what is not a network", () => {
    for (const bad of [
      "", "10.0.0.0/33", "10.0.0/8", "256.0.0.1", "010.0.0.1", "10.0.0.0/", "10.0.0.0/08", "a.b.c.d",
      "1:2:3:4:5:6:7:8:9", "1::2::3", "2001:db8::/129", "fe80::1%eth0", "12345::", "::1.2.3", "localhost"
    ]) expect(Cidr.parse(bad), bad).toBeUndefined()
  })
})

describe("Cidr.parseList", () => {
  it("returns every network when all parse", () => {
    const result = Cidr.parseList(["127.0.0.1", "::1", "10.0.0.0/8"])
    expect("ok" in result && result.ok.map(Cidr.format)).toEqual(["127.0.0.1/32", "::1/128", "10.0.0.0/8"])
  })

  it("names the first bad entry", () => {
    const result = Cidr.parseList(["10.0.0.0/8", "10.0.0.0/40", "nope"])
    expect("error" in result && result.error).toContain('"10.0.0.0/40" (entry 2)')
  })
})

describe("Cidr.contains and Cidr.matchAny", () => {
  it("matches IPv4 addresses inside the prefix only", () => {
    expect(Cidr.contains(net("192.0.2.0/24"), "192.0.2.255")).toBe(true)
    expect(Cidr.contains(net("192.0.2.0/24"), "192.0.3.0")).toBe(false)
    expect(Cidr.contains(net("0.0.0.0/0"), "203.0.113.9")).toBe(true)
  })

  it("treats an IPv4-mapped IPv6 client as its IPv4 address", () => {
    expect(Cidr.contains(net("192.0.2.0/24"), "::ffff:192.0.2.10")).toBe(true)
    expect(Cidr.contains(net("192.0.2.0/24"), "::FFFF:c000:020a")).toBe(true)
    expect(Cidr.contains(net("::/0"), "::ffff:192.0.2.10")).toBe(false)
  })

  it("matches IPv6 addresses, ignoring a zone", () => {
    expect(Cidr.contains(net("2001:db8::/32"), "2001:db8:ffff::1")).toBe(true)
    expect(Cidr.contains(net("2001:db8::/32"), "2001:db9::1")).toBe(false)
    expect(Cidr.contains(net("fe80::/10"), "fe80::1%eth0")).toBe(true)
  })

  it("never matches across families or on garbage", () => {
    expect(Cidr.contains(net("0.0.0.0/0"), "::1")).toBe(false)
    expect(Cidr.contains(net("0.0.0.0/0"), "not an address")).toBe(false)
    expect(Cidr.matchAny([], "127.0.0.1")).toBe(false)
  })

  it("matches when any network contains the address", () => {
    const list = [net("127.0.0.1"), net("::1"), net("10.0.0.0/8")]
    expect(Cidr.matchAny(list, "::1")).toBe(true)
    expect(Cidr.matchAny(list, "10.200.0.1")).toBe(true)
    expect(Cidr.matchAny(list, "11.0.0.1")).toBe(false)
  })
})

describe("Cidr.aggregate and Cidr.canonical", () => {
  it("gives the enclosing network as text", () => {
    expect(Cidr.aggregate("1.2.3.4", 24, 64)).toBe("1.2.3.0/24")
    expect(Cidr.aggregate("::ffff:1.2.3.4", 16, 64)).toBe("1.2.0.0/16")
    expect(Cidr.aggregate("2001:db8:1:2:3::4", 24, 48)).toBe("2001:db8:1::/48")
    expect(Cidr.aggregate("2001:db8:1:2:3::4", 24, 128)).toBe("2001:db8:1:2:3::4/128")
  })

  it("returns an unparseable address unchanged", () => {
    expect(Cidr.aggregate("unix-socket", 24, 64)).toBe("unix-socket")
  })

  it("writes addresses canonically", () => {
    expect(Cidr.canonical("::ffff:192.0.2.1")).toBe("192.0.2.1")
    expect(Cidr.canonical("2001:0DB8:0000:0000:1:0:0:1")).toBe("2001:db8::1:0:0:1")
    expect(Cidr.canonical("[IPv6:2001:db8::1]")).toBe("2001:db8::1")
    expect(Cidr.canonical("nope")).toBeUndefined()
    expect(Cidr.familyOf("::ffff:192.0.2.1")).toBe(4)
  })
})
