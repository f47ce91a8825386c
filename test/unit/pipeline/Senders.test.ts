import { describe, expect, it } from "@effect/vitest"
import * as Senders from "../../../src/pipeline/Senders.ts"
import { Contexts } from "smtp-bridge/testing"

const allowed = (pattern: string, address: string): boolean => Senders.allows([Senders.parsePattern(pattern)!], Contexts.mailbox(address))

describe("Senders", () => {
  it("parses a header section's From and Sender once, and each section on its own", () => {
    const a = [{ name: "From", value: "Alice <alice@example.org>" }]
    const b = [{ name: "From", value: "bob@example.net" }, { name: "Sender", value: "x@example.net" }]
    const first = Senders.fromHeaders(a)
    expect(Senders.fromHeaders(a)).toBe(first)
    expect(first).toMatchObject({ _tag: "Ok", from: [{ address: "alice@example.org" }], sender: undefined })
    expect(Senders.fromHeaders(b)).toMatchObject({ _tag: "Ok", from: [{ address: "bob@example.net" }], sender: { address: "x@example.net" } })
    expect(Senders.fromHeaders([...a, ...a])).toMatchObject({ _tag: "Invalid", header: "From" })
  })

  it.each([
    ["Example.COM", "example.com"],
    ["Bücher.example", "xn--bcher-kva.example"],
    ["bu\u0308cher.example", "xn--bcher-kva.example"],
    ["XN--BCHER-KVA.example", "xn--bcher-kva.example"],
    ["[192.0.2.1]", "[192.0.2.1]"],
    ["[IPv6:2001:DB8::1]", "[ipv6:2001:db8::1]"]
  ])("compares the domain %j as %j", (domain, canonical) => {
    expect(Senders.canonicalDomain(domain)).toBe(canonical)
  })

  // Runtimes differ here (Deno's domainToASCII keeps spaces and brackets): the result is checked again.
  it.each(["a b.example", "ex\u0085.com", "", "[not a literal]", "under_score.example", "-x.example"])("finds no domain in %j", (domain) => {
    expect(Senders.canonicalDomain(domain)).toBeUndefined()
  })

  it("ignores ASCII case in local parts and nothing else", () => {
    expect(allowed("kate@example.com", "KATE@EXAMPLE.COM")).toBe(true)
    expect(allowed("kate@example.com", "\u212Aate@example.com")).toBe(false)
    expect(allowed("åse@example.com", "\u212Bse@example.com")).toBe(false)
    expect(allowed("åse@example.com", "ÅSE@example.com")).toBe(false)
    expect(allowed("ss@example.com", "ß@example.com")).toBe(false)
    expect(allowed("i@example.com", "İ@example.com")).toBe(false)
  })

  it("matches @domain patterns on the A-label and never a subdomain", () => {
    expect(allowed("@bücher.example", "x@xn--bcher-kva.example")).toBe(true)
    expect(allowed("@xn--bcher-kva.example", "x@BÜCHER.example")).toBe(true)
    expect(allowed("@example.com", "x@sub.example.com")).toBe(false)
    expect(allowed("@example.com", "x@example.com.evil.test")).toBe(false)
  })

  it("refuses patterns that are no address, @domain or *", () => {
    for (const entry of ["example.com", "@", "a@", "@a b", "x@[bad]"]) expect(Senders.parsePattern(entry), entry).toBeUndefined()
  })
})
