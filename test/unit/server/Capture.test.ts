import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DnsError } from "../../../src/dns/Dns.ts"
import * as Observe from "../../../src/dns/Observe.ts"
import * as Static from "../../../src/dns/Static.ts"
import * as Capture from "../../../src/server/Capture.ts"
import * as Reply from "../../../src/protocol/Reply.ts"
import { Contexts } from "smtp-bridge/testing"

const dir = () => fs.mkdtempSync(path.join(os.tmpdir(), "capture-"))
const read = (d: string): Capture.CaptureFile => JSON.parse(fs.readFileSync(path.join(d, fs.readdirSync(d)[0]!), "utf8"))
const message = Contexts.content(`Subject: big\r\nFrom: a@example.org\r\n\r\n${"x".repeat(2000)}\r\n`)

describe("session capture", () => {
  it("never names a SASL response or an AUTH initial response", () => {
    expect(Capture.label(true, "YWxpY2U=")).toBe("*")
    expect(Capture.label(false, "AUTH PLAIN AGFsaWNlAHNlY3JldA==")).toBe("AUTH PLAIN *")
    expect(Capture.label(false, "auth login YWxpY2U=")).toBe("auth login *")
    expect(Capture.label(false, "AUTH LOGIN")).toBe("AUTH LOGIN")
  })

  it.effect("keeps a message over maxMessageSize as its header section only, and a small one whole", () =>
    Effect.gen(function*() {
      const d = dir()
      const rec = Capture.begin({ dir: d, sample: 1, maxMessageSize: 1000, headersOnly: false }, Contexts.session())!
      rec.input("(message)")
      yield* rec.message(message, "T1")
      yield* rec.message(Contexts.content("Subject: small\r\n\r\nhi\r\n"), "T2")
      rec.reply(Reply.make(250, "2.0.0", "Ok"))
      yield* rec.finish("quit")
      const file = read(d)
      expect(file.messages.map((m) => [m.content, m.size, Buffer.from(m.data, "base64").toString()])).toEqual([
        ["headers", message.size, "Subject: big\r\nFrom: a@example.org\r\n\r\n"],
        ["full", 22, "Subject: small\r\n\r\nhi\r\n"]
      ])
      expect(file.exchanges).toEqual([{ at: expect.any(Number), input: "(message)", replies: ["250 2.0.0 Ok"], ms: expect.any(Number) }])
      expect((fs.statSync(path.join(d, fs.readdirSync(d)[0]!)).mode & 0o777).toString(8)).toBe("600")
    }))

  it.effect("with headersOnly keeps no body, whatever the size", () =>
    Effect.gen(function*() {
      const d = dir()
      const rec = Capture.begin({ dir: d, sample: 1, maxMessageSize: 1_000_000, headersOnly: true }, Contexts.session())!
      yield* rec.message(Contexts.content("Subject: s\r\n\r\nsecret body\r\n"), "T1")
      yield* rec.finish("quit")
      expect(Buffer.from(read(d).messages[0]!.data, "base64").toString()).toBe("Subject: s\r\n\r\n")
    }))

  it("captures no session at sample 0 and every one at sample 1", () => {
    const config = { dir: "/nonexistent", sample: 0, maxMessageSize: 1, headersOnly: false }
    expect(Array.from({ length: 50 }, () => Capture.begin(config, Contexts.session())).every((r) => r === undefined)).toBe(true)
    expect(Array.from({ length: 50 }, () => Capture.begin({ ...config, sample: 1 }, Contexts.session())).every((r) => r !== undefined)).toBe(true)
  })

  it.effect("keeps at most 10,000 exchanges of an endless session and says it was truncated", () =>
    Effect.gen(function*() {
      const d = dir()
      const rec = Capture.begin({ dir: d, sample: 1, maxMessageSize: 1000, headersOnly: false }, Contexts.session())!
      for (let i = 0; i < 25_000; i++) {
        rec.input("NOOP")
        rec.reply(Reply.make(250, "2.0.0", "Ok"))
      }
      yield* rec.finish("quit")
      const file = read(d)
      expect(file.exchanges).toHaveLength(Capture.maxExchanges)
      expect(file.truncated).toBe(true)
      expect(file.exchanges.every((e) => e.replies.length === 1)).toBe(true)
    }))

  describe("DNS answers", () => {
    const zone = Static.make({
      "example.org": { TXT: ["v=spf1 ip4:192.0.2.0/24 -all"], MX: [{ exchange: "mx.example.org", priority: 10 }] },
      "slow.example": "TEMPFAIL"
    })

    it.effect("records the first answer per name and type a session's lookups got: records, NXDOMAIN, no data, a timeout", () =>
      Effect.gen(function*() {
        const d = dir()
        const rec = Capture.begin({ dir: d, sample: 1, maxMessageSize: 1000, headersOnly: false }, Contexts.session())!
        yield* Effect.gen(function*() {
          yield* zone.txt("example.org")
          yield* zone.txt("EXAMPLE.org.") // the same question: not recorded again
          yield* zone.mx("example.org")
          yield* Effect.either(zone.txt("nope.example"))
          yield* Effect.either(zone.a("example.org"))
          yield* Effect.either(zone.txt("slow.example"))
          // mailauth's form, a promise: run on this fiber's runtime by Mailauth, here by hand.
          yield* Effect.either(zone.query("example.org", "AAAA"))
        }).pipe(Effect.locally(Observe.current, rec.dns))
        // Outside the session's fiber nothing is recorded.
        yield* zone.txt("example.org").pipe(Effect.zipRight(Effect.either(zone.a("other.example"))))
        yield* rec.finish("quit")
        const file = read(d)
        expect(file.dns).toEqual([
          { at: expect.any(Number), name: "example.org", type: "TXT", records: [["v=spf1 ip4:192.0.2.0/24 -all"]] },
          { at: expect.any(Number), name: "example.org", type: "MX", records: [{ exchange: "mx.example.org", priority: 10 }] },
          { at: expect.any(Number), name: "nope.example", type: "TXT", code: "ENOTFOUND" },
          { at: expect.any(Number), name: "example.org", type: "A", code: "ENODATA" },
          { at: expect.any(Number), name: "slow.example", type: "TXT", code: "ETIMEOUT" },
          { at: expect.any(Number), name: "example.org", type: "AAAA", code: "ENODATA" }
        ])
        expect(file.dnsTruncated).toBeUndefined()
      }))

    it.effect(`keeps at most ${Capture.maxDnsAnswers} answers of a session that looks up endless names, and says dnsTruncated`, () =>
      Effect.gen(function*() {
        const d = dir()
        const rec = Capture.begin({ dir: d, sample: 1, maxMessageSize: 1000, headersOnly: false }, Contexts.session())!
        for (let i = 0; i < 5_000; i++) rec.dns(`n${i}.example`, "A", { _tag: "NoRecords", code: "ENOTFOUND", ttl: 60 })
        yield* rec.finish("quit")
        const file = read(d)
        expect(file.dns).toHaveLength(Capture.maxDnsAnswers)
        expect(file.dns!.at(-1)!.name).toBe(`n${Capture.maxDnsAnswers - 1}.example`)
        expect(file.dnsTruncated).toBe(true)
      }))

    it.effect(`keeps at most ${Capture.maxDnsBytes / 1024} KiB of answers, however few they are`, () =>
      Effect.gen(function*() {
        const d = dir()
        const rec = Capture.begin({ dir: d, sample: 1, maxMessageSize: 1000, headersOnly: false }, Contexts.session())!
        const big = ["x".repeat(255), "y".repeat(255), "z".repeat(255), "w".repeat(255)]
        for (let i = 0; i < 500; i++) rec.dns(`k${i}._domainkey.example`, "TXT", { _tag: "Records", records: [{ type: "TXT", value: big }], ttl: 60 })
        rec.dns("late.example", "TXT", { _tag: "Failed", error: new DnsError({ reason: "Temporary", code: "ESERVFAIL", name: "late.example", rrtype: "TXT", message: "x" }) })
        yield* rec.finish("quit")
        const file = read(d)
        expect(Buffer.byteLength(JSON.stringify(file.dns))).toBeLessThanOrEqual(Capture.maxDnsBytes)
        expect(file.dns!.length).toBeGreaterThan(200)
        expect(file.dns!.length).toBeLessThan(500)
        expect(file.dns!.some((x) => x.name === "late.example")).toBe(false)
        expect(file.dnsTruncated).toBe(true)
      }))
  })
})
