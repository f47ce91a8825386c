import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Resolve from "../../../src/config/Resolve.ts"
import { definePlugin, Dns, Verdict } from "../../../src/index.ts"
import type * as Capture from "../../../src/server/Capture.ts"
import * as Replay from "../../../src/testing/Replay.ts"

// A rule that depends on DNS: the sender's domain must publish TXT "allow".
const txtPolicy = definePlugin({
  name: "txt-policy",
  mailFrom: ({ from }) =>
    Effect.gen(function*() {
      const dns = yield* Dns
      const txt = yield* Effect.either(dns.txt(from?.domain ?? ""))
      if (txt._tag === "Right") return txt.right.some((r) => r.join("") === "allow") ? Verdict.Continue : Verdict.reject("Not allowed", { code: 550, enhanced: "5.7.1" })
      return txt.left.reason === "NotFound"
        ? Verdict.reject("No policy published", { code: 550, enhanced: "5.7.1" })
        : Verdict.defer("Policy lookup failed", { code: 451, enhanced: "4.7.1" })
    })
})

const session = (id: string, domain: string, reply: string, refusedBy?: string): Capture.CaptureFile => ({
  format: "smtp-bridge-capture",
  version: 1,
  session: id,
  start: new Date(Date.UTC(2025, 5, 1)).toISOString(),
  startMs: Date.UTC(2025, 5, 1),
  client: { remoteAddress: "192.0.2.10", remotePort: 40000, localAddress: "192.0.2.1", localPort: 25 },
  hostname: "mx.dns.test",
  tls: [],
  auth: [],
  messages: [],
  outcome: "quit",
  exchanges: [
    { at: 0, input: "(connect)", replies: ["220 mx.dns.test ESMTP smtp-bridge"], ms: 0 },
    { at: 5, input: "HELO client.test", replies: ["250 mx.dns.test"], ms: 0 },
    { at: 9, input: `MAIL FROM:<a@${domain}>`, replies: [reply], ms: 3, ...(refusedBy === undefined ? {} : { refusedBy }) },
    { at: 12, input: "QUIT", replies: ["221 2.0.0 mx.dns.test closing connection"], ms: 0 }
  ]
})

// What the DNS said when these sessions were captured; today's resolver (a closed loopback port)
// answers nothing, so any lookup that reaches it is a temporary failure.
const captures: ReadonlyArray<Capture.CaptureFile> = [
  { ...session("A", "allowed.example", "250 2.1.0 Ok"), dns: [{ at: 9, name: "allowed.example", type: "TXT", records: [["allow"]] }] },
  { ...session("M", "missing.example", "550 5.7.1 No policy published", "txt-policy"), dns: [{ at: 9, name: "missing.example", type: "TXT", code: "ENOTFOUND" }] },
  { ...session("S", "slow.example", "451 4.7.1 Policy lookup failed", "txt-policy"), dns: [{ at: 9, name: "SLOW.example.", type: "TXT", code: "ETIMEOUT" }] }
]

const config = Resolve.resolve({
  hostname: "mx.dns.test",
  trust: ["192.0.2.0/24"],
  dns: { servers: ["127.0.0.1:1"], timeoutMs: 200, attempts: 1 },
  plugins: [txtPolicy]
}, "test")

const replay = (files: ReadonlyArray<Capture.CaptureFile>) =>
  Effect.flatMap(config, (c) => Effect.scoped(Replay.run(c, files.map((content, i) => ({ file: `${i}.json`, content })))))

describe("replay: DNS from the capture", () => {
  it.live("answers each recorded name and type as recorded (records, NXDOMAIN, a timeout): no difference, no lookup today", () =>
    Effect.gen(function*() {
      const report = yield* replay(captures)
      expect(report.sessions.map((s) => s.differences)).toEqual([[], [], []])
      expect(report.sessions.map((s) => s.dns)).toEqual([{ notCaptured: 0, queries: [] }, { notCaptured: 0, queries: [] }, { notCaptured: 0, queries: [] }])
      expect(report.dnsNotCaptured).toBe(0)
      expect(Replay.format(report)).toBe("replayed 3 sessions: 0 changed, 3 unchanged")
    }))

  it.live("sends a capture without DNS answers (older than them) to today's resolver, and says how many lookups that was", () =>
    Effect.gen(function*() {
      const report = yield* replay(captures.map(({ dns: _, ...c }) => c))
      expect(report.sessions.map((s) => s.differences.map((d) => [d.input, d.new, d.newBy]))).toEqual([
        [["MAIL FROM:<a@allowed.example>", ["451 4.7.1 Policy lookup failed"], "txt-policy"]],
        [["MAIL FROM:<a@missing.example>", ["451 4.7.1 Policy lookup failed"], "txt-policy"]],
        []
      ])
      expect(report.sessions.map((s) => s.dns)).toEqual([
        { notCaptured: 1, queries: ["TXT allowed.example"] },
        { notCaptured: 1, queries: ["TXT missing.example"] },
        { notCaptured: 1, queries: ["TXT slow.example"] }
      ])
      expect(report.dnsNotCaptured).toBe(3)
      const text = Replay.format(report)
      expect(text).toContain("0.json (session A from 192.0.2.10): 1 difference\n  1 DNS query not in the capture, answered by the config's resolver: TXT allowed.example\n")
      expect(text).toContain("2.json (session S from 192.0.2.10): no difference; 1 DNS query not in the capture, answered by the config's resolver: TXT slow.example")
      expect(text.split("\n").at(-1)).toBe("replayed 3 sessions: 2 changed, 1 unchanged; 3 DNS queries not in the captures")
    }))

  it.live("counts only the lookups a capture lacks: a second sender in the session was never looked up then", () =>
    Effect.gen(function*() {
      const base = captures[0]!
      const capture = {
        ...base,
        exchanges: [
          ...base.exchanges.slice(0, 3),
          { at: 10, input: "RSET", replies: ["250 2.0.0 Ok"], ms: 0 },
          { at: 11, input: "MAIL FROM:<b@new.example>", replies: ["250 2.1.0 Ok"], ms: 0 },
          ...base.exchanges.slice(3)
        ]
      }
      const report = yield* replay([capture])
      expect(report.sessions[0]!.dns).toEqual({ notCaptured: 1, queries: ["TXT new.example"] })
      expect(report.sessions[0]!.differences.map((d) => d.input)).toEqual(["MAIL FROM:<b@new.example>"])
    }))

  it("refuses DNS answers that are not a name, a type and its records or code", () => {
    const ok = captures[0]!
    expect(Replay.problemOf(ok)).toBeUndefined()
    expect(Replay.problemOf({ ...ok, dns: {} })).toBe("dns is not a list")
    for (const bad of [{ name: "x", type: "SRV", code: "ENOTFOUND" }, { name: "x", type: "TXT" }, { name: "x", type: "TXT", records: ["not an array"] }, { name: "x", type: "MX", records: [{ exchange: "m" }] }]) {
      expect(Replay.problemOf({ ...ok, dns: [ok.dns![0], bad] })).toBe("dns answer 1 is not a name, a record type and its records or code")
    }
  })
})
