import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as Address from "../../../src/protocol/Address.ts"

const ascii = { smtputf8: false, allowNull: false } as const
const utf8 = { smtputf8: true, allowNull: false } as const

const mailbox = (text: string, options: Address.PathOptions = ascii) => {
  const parsed = Address.parsePath(text, options)
  if (parsed._tag !== "Ok") throw new Error(`expected ${text} to parse, got ${parsed.reason}`)
  if (parsed.mailbox === null) throw new Error(`expected ${text} to be a mailbox, got the null path`)
  return parsed.mailbox
}
const reason = (text: string, options: Address.PathOptions = ascii) => {
  const parsed = Address.parsePath(text, options)
  return parsed._tag === "Error" ? parsed.reason : "Ok"
}

describe("Address.parsePath", () => {
  describe("accepts", () => {
    it("a plain mailbox", () => {
      expect(mailbox("<john@example.com>")).toEqual({ local: "john", domain: "example.com", address: "john@example.com" })
    })

    it("a dot-string with every atext special", () => {
      expect(mailbox("<a.b!#$%&'*+-/=?^_`{|}~@x.example>").local).toBe("a.b!#$%&'*+-/=?^_`{|}~")
    })

    it("a quoted local part, unquoting it and quoting it again in the address", () => {
      expect(mailbox("<\"john doe\"@example.com>")).toEqual({
        local: "john doe",
        domain: "example.com",
        address: "\"john doe\"@example.com"
      })
    })

    it("quoted-pairs, keeping the escape only where the address needs it", () => {
      expect(mailbox("<\"a\\\"b\\\\c\\d\"@x>")).toEqual({ local: "a\"b\\cd", domain: "x", address: "\"a\\\"b\\\\cd\"@x" })
    })

    it("a needlessly quoted local part, writing it back unquoted", () => {
      expect(mailbox("<\"john\"@example.com>").address).toBe("john@example.com")
    })

    it("an empty quoted local part", () => {
      expect(mailbox("<\"\"@example.com>")).toEqual({ local: "", domain: "example.com", address: "\"\"@example.com" })
    })

    it("a source route, dropping it", () => {
      expect(mailbox("<@relay.example,@other.example:john@example.com>").address).toBe("john@example.com")
    })

    it("an IPv4 address literal", () => {
      expect(mailbox("<john@[192.0.2.1]>").domain).toBe("[192.0.2.1]")
    })

    it.each(["IPv6:2001:db8::1", "IPv6:::1", "ipv6:1:2:3:4:5:6:7:8", "IPv6:::ffff:192.0.2.1", "IPv6:2001:db8::"])(
      "an IPv6 address literal [%s]",
      (literal) => {
        expect(mailbox(`<a@[${literal}]>`).domain).toBe(`[${literal}]`)
      }
    )

    it("a general address literal", () => {
      expect(mailbox("<a@[x-tag:some-thing]>").domain).toBe("[x-tag:some-thing]")
    })

    it("a single-label domain and hyphens inside labels", () => {
      expect(mailbox("<root@local-host>").domain).toBe("local-host")
    })

    it("the null path when allowed", () => {
      expect(Address.parsePath("<>", { smtputf8: false, allowNull: true })).toEqual({ _tag: "Ok", mailbox: null })
    })

    it("the bare <Postmaster> when allowed, with an empty domain", () => {
      expect(mailbox("<Postmaster>", { ...ascii, allowPostmaster: true })).toEqual({
        local: "Postmaster",
        domain: "",
        address: "Postmaster"
      })
    })

    it("UTF-8 in the local part and domain under SMTPUTF8", () => {
      expect(mailbox("<jöhn@例え.jp>", utf8)).toEqual({ local: "jöhn", domain: "例え.jp", address: "jöhn@例え.jp" })
    })

    it("a local part of 64 octets and a path of 256 octets", () => {
      expect(reason(`<${"a".repeat(64)}@x>`)).toBe("Ok")
      const domain = Array.from({ length: 3 }, () => "d".repeat(61)).join(".") + ".example"
      const path = `<${"a".repeat(256 - 3 - domain.length)}@${domain}>`
      expect(path.length).toBe(256)
      expect(reason(path)).toBe("Ok")
      expect(reason(path.replace("<", "<a"))).toBe("TooLong")
    })
  })

  describe("refuses as Syntax", () => {
    it.each([
      ["a path without angle brackets", "john@example.com"],
      ["a missing closing bracket", "<john@example.com"],
      ["a missing domain", "<john@>"],
      ["a missing @", "<john>"],
      ["a missing local part", "<@example.com>"],
      ["a space outside quotes", "<john doe@example.com>"],
      ["a space around the mailbox", "< john@example.com>"],
      ["a leading dot", "<.john@example.com>"],
      ["a trailing dot", "<john.@example.com>"],
      ["two dots", "<jo..hn@example.com>"],
      ["a trailing dot in the domain", "<john@example.com.>"],
      ["an empty domain label", "<john@example..com>"],
      ["a label starting with a hyphen", "<john@-example.com>"],
      ["a label ending with a hyphen", "<john@example-.com>"],
      ["an underscore in the domain", "<john@ex_ample.com>"],
      ["a label over 63 octets", `<john@${"a".repeat(64)}.com>`],
      ["a control character", "<jo\x01hn@example.com>"],
      ["a TAB", "<jo\thn@example.com>"],
      ["a control character inside quotes", "<\"jo\x7fhn\"@example.com>"],
      ["an unterminated quoted string", "<\"john@example.com>"],
      ["text after the quoted string", "<\"john\"x@example.com>"],
      ["two @", "<john@doe@example.com>"],
      ["an IPv4 literal out of range", "<a@[192.0.2.256]>"],
      ["an IPv4 literal with three parts", "<a@[192.0.2]>"],
      ["an IPv6 literal with two ::", "<a@[IPv6:1::2::3]>"],
      ["an IPv6 literal with nine groups", "<a@[IPv6:1:2:3:4:5:6:7:8:9]>"],
      ["an IPv6 literal with a bad group", "<a@[IPv6:12345::1]>"],
      ["an untagged literal", "<a@[example]>"],
      ["a literal with a space", "<a@[x-tag:a b]>"],
      ["a source route without the colon", "<@relay.example,john@example.com>"],
      ["a source route with a bad domain", "<@relay_example:john@example.com>"],
      ["U+FFFD left by invalid UTF-8", "<j\ufffdhn@example.com>"]
    ])("%s", (_, text) => {
      expect(reason(text, utf8)).toBe("Syntax")
    })

    it("the null path when not allowed", () => {
      expect(reason("<>")).toBe("Syntax")
    })

    it("the bare <postmaster> when not allowed", () => {
      expect(reason("<postmaster>")).toBe("Syntax")
    })
  })

  describe("refuses as NonAscii", () => {
    it("UTF-8 in the local part without SMTPUTF8", () => {
      expect(reason("<jöhn@example.com>")).toBe("NonAscii")
    })

    it("UTF-8 in the domain without SMTPUTF8", () => {
      expect(reason("<john@例え.jp>")).toBe("NonAscii")
    })

    it("UTF-8 in a quoted local part without SMTPUTF8", () => {
      expect(reason("<\"jö hn\"@example.com>")).toBe("NonAscii")
    })
  })

  describe("refuses as TooLong", () => {
    it("a local part over 64 octets", () => {
      expect(reason(`<${"a".repeat(65)}@example.com>`)).toBe("TooLong")
    })

    it("a local part over 64 octets once encoded as UTF-8", () => {
      expect(reason(`<${"ö".repeat(33)}@example.com>`, utf8)).toBe("TooLong")
    })

    it("a path over 256 octets", () => {
      const domain = Array.from({ length: 5 }, () => "d".repeat(50)).join(".")
      expect(reason(`<john@${domain}>`)).toBe("TooLong")
    })
  })
})

describe("Address.formatPath", () => {
  it("writes the null path as <>", () => {
    expect(Address.formatPath(null)).toBe("<>")
  })

  it("writes a mailbox with its quoting", () => {
    expect(Address.formatPath(Address.mailbox("john doe", "example.com"))).toBe("<\"john doe\"@example.com>")
  })
})

describe("Address round trips", () => {
  const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/)
  const domain = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join("."))
  const local = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 30 })

  it("parses a formatted mailbox back to the same mailbox", () => {
    fc.assert(
      fc.property(local, domain, (l, d) => {
        const box = Address.mailbox(l, d)
        expect(Address.parsePath(Address.formatPath(box), ascii)).toEqual({ _tag: "Ok", mailbox: box })
      }),
      { numRuns: 1000 }
    )
  })

  it("formats a parsed path to a path that parses to the same mailbox", () => {
    const path = fc.oneof(
      fc.tuple(local, domain).map(([l, d]) => `<"${l.replace(/["\\]/g, "\\$&")}"@${d}>`),
      fc.tuple(local, domain).map(([l, d]) => `<${l}@${d}>`)
    )
    fc.assert(
      fc.property(path, (p) => {
        const parsed = Address.parsePath(p, ascii)
        if (parsed._tag === "Ok" && parsed.mailbox !== null) {
          expect(Address.parsePath(Address.formatPath(parsed.mailbox), ascii)).toEqual(parsed)
        }
      }),
      { numRuns: 1000 }
    )
  })
})
