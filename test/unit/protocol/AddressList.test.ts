import { describe, expect, it } from "@effect/vitest"
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
    ["Jörg <jörg@bücher.example>", ["jörg@bücher.example"]]
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
    ["Alice <alice@example.com", "an unclosed angle"],
    ["(unclosed alice@example.com", "an unclosed comment"],
    ["\"unclosed <alice@example.com>", "an unclosed quote"],
    ["A: B: b@example.com;;", "a group in a group"],
    ["", "nothing"],
    ["a".repeat(9000) + "@example.com", "a value past the length cap"]
  ])("refuses %j (%s)", (value) => {
    expect(addresses(value)).toMatch(/^error: /)
  })
})
