import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as AddressList from "../../../src/protocol/AddressList.ts"

const addresses = (value: string): ReadonlyArray<string> | string => {
  const parsed = AddressList.parse(value)
  return parsed._tag === "Ok" ? parsed.mailboxes.map((m) => m.mailbox.address) : `error: ${parsed.reason}`
}

describe("AddressList.parse (RFC 5322 address-list, strict)", () => {
  it.each([
    ["alice@example.com", ["alice@example.com"]],
    ["Alice <alice@example.com>", ["alice@example.com"]],
    ["\"alice@example.com\" <ceo@example.com>", ["ceo@example.com"]],
    ["\"Doe, John\" <john@example.com>, jane@example.org", ["john@example.com", "jane@example.org"]],
    ["ceo@example.com (alice@example.com)", ["ceo@example.com"]],
    ["Alice (a (nested) comment) <alice(c)@example.com> (x)", ["alice@example.com"]],
    ["John Q. Public <jqp@example.com>", ["jqp@example.com"]],
    ["Team: a@example.com, B <b@example.com>;, c@example.com", ["a@example.com", "b@example.com", "c@example.com"]],
    ["undisclosed-recipients:;", []],
    ["\"john doe\"@example.com", ["\"john doe\"@example.com"]],
    ["x@[192.0.2.1]", ["x@[192.0.2.1]"]],
    ["=?utf-8?q?J=C3=B6rg?= <joerg@example.com>", ["joerg@example.com"]],
    ["Jörg <jörg@bücher.example>", ["jörg@bücher.example"]],
    ["J\uFFFDrg (Latin-1 from a legacy client) <joerg@example.com>", ["joerg@example.com"]]
  ])("reads %j as %j", (value, expected) => {
    expect(addresses(value)).toEqual(expected)
  })

  it.each([
    ["alice@example.com <ceo@example.com>", "an addr-spec then an angle address"],
    ["<alice@example.com> ceo@example.com", "an angle address then an addr-spec"],
    ["\"x\" <alice@example.com> <ceo@example.com>", "two angle addresses"],
    ["alice@example.com@ceo.example", "two @"],
    ["alice@example.com,", "an empty element"],
    [", alice@example.com", "an empty first element"],
    ["<@relay.example:ceo@example.com>", "a source route"],
    ["alice . smith@example.com", "whitespace inside a dot-atom"],
    ["alice@example..com", "an empty label"],
    ["=?utf-8?b?Y2VvQGV4YW1wbGUuY29t?=@example.com", "an encoded word as local part"],
    ["alice@exam ple.com", "a space in the domain"],
    ["alice@example.com\u0085", "a C1 control"],
    ["alice@example.com\u0000", "a NUL"],
    ["Alice\u0085 <alice@example.com>", "a C1 control in a display name"],
    ["j\uFFFDrg@example.com", "invalid UTF-8 in a local part"],
    ["\"j\uFFFDrg\"@example.com", "invalid UTF-8 in a quoted local part"],
    ["joerg@b\uFFFDcher.example", "invalid UTF-8 in a domain"],
    ["Alice <alice@example.com", "an unclosed angle"],
    ["(unclosed alice@example.com", "an unclosed comment"],
    ["\"unclosed <alice@example.com>", "an unclosed quote"],
    ["A: B: b@example.com;;", "a group in a group"],
    ["", "nothing"],
    ["a".repeat(9000) + "@example.com", "a value past the length cap"]
  ])("refuses %j (%s)", (value) => {
    expect(addresses(value)).toMatch(/^error: /)
  })

  // Every list written the usual ways (bare, with a display name quoted or not, with comments)
  // reads back as exactly its addresses, in order.
  it("reads back the addresses of any list written with display names, quotes and comments", () => {
    const atom = fc.stringMatching(/^[a-z0-9!#$%&'*+\-/=?^_`{|}~]{1,8}$/)
    const local = fc.array(atom, { minLength: 1, maxLength: 3 }).map((parts) => parts.join("."))
      .filter((l) => !/=\?/.test(l))
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?$/)
    const domain = fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => labels.join("."))
    const name = fc.stringMatching(/^[ -~]{0,12}$/)
    const entry = fc.record({ local, domain, name, style: fc.integer({ min: 0, max: 3 }) })
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 4 }), (entries) => {
        const written = entries.map(({ local, domain, name, style }) => {
          const address = `${local}@${domain}`
          const quoted = `"${name.replace(/["\\]/g, "\\$&")}"`
          const comment = `(${name.replace(/[()\\]/g, "\\$&")})`
          return [address, `${quoted} <${address}>`, `${address} ${comment}`, `${comment} <${address}>`][style]!
        }).join(", ")
        expect(addresses(written)).toEqual(entries.map(({ local, domain }) => `${local}@${domain}`))
      }),
      { numRuns: 300 }
    )
  })
})
