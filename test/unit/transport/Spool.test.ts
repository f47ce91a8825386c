import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Spool from "../../../src/transport/Spool.ts"
import { TransportError } from "../../../src/transport/Transport.ts"
import {
  body, deliveryStatus, entry, eventually, files, later, ok, recipient, scripted, tempDir, unknownUser
} from "./SpoolFixtures.ts"

// Small real delays: these specifications run on the live clock against real files.
const fast = { initialDelay: "40 millis", maxDelay: "200 millis", maxAge: "1 hour" } as const

describe("Spool", () => {
  it.scopedLive("delivers a queued message through its transport and removes it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay")
      const spool = yield* Spool.make({ dir, hostname: "mx.bridge.test", transports: new Map([["relay", relay.transport]]), retry: fast })
      const queued = entry([{ transport: "relay", recipients: [recipient("bob@example.org"), recipient("carol@example.org")] }])
      yield* spool.enqueue(queued)

      yield* eventually(files(dir), (f) => f.length === 0)
      expect(relay.calls).toHaveLength(1)
      const call = relay.calls[0]!
      expect(call.id).toBe(queued.id)
      expect(call.mailFrom).toBe("alice@example.com")
      expect(call.recipients).toEqual(["bob@example.org", "carol@example.org"])
      expect(call.text).toBe(body)
      expect(call.message.size).toBe(body.length)
      expect(call.message.session).toMatchObject({ id: "S1", remoteAddress: "203.0.113.5", user: "alice", hostname: "mx.bridge.test" })
      expect(call.message.session.notes.has({ name: "anything" })).toBe(false)
    }))

  it.scopedLive("retries a 4xx with exponential backoff and delivers once the upstream accepts", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay", (_, call) => (call < 3 ? later : ok))
      const spool = yield* Spool.make({ dir, hostname: "mx.bridge.test", transports: new Map([["relay", relay.transport]]), retry: fast })
      yield* spool.enqueue(entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }]))

      yield* eventually(files(dir), (f) => f.length === 0)
      expect(relay.calls).toHaveLength(3)
      const [first, second, third] = relay.calls.map((c) => c.at)
      // 40 ms then 80 ms, each with up to 20% jitter.
      expect(second! - first!).toBeGreaterThanOrEqual(30)
      expect(third! - second!).toBeGreaterThanOrEqual(60)
    }))

  it.scopedLive("treats a TransportError without a 5xx reply as transient", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const down = new TransportError({ transport: "relay", reason: "Unreachable", message: "connection refused" })
      const relay = scripted("relay", (_, call) => (call === 1 ? down : ok))
      const spool = yield* Spool.make({ dir, hostname: "mx.bridge.test", transports: new Map([["relay", relay.transport]]), retry: fast })
      yield* spool.enqueue(entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }]))
      yield* eventually(files(dir), (f) => f.length === 0)
      expect(relay.calls).toHaveLength(2)
    }))

  it.scopedLive("bounces a 5xx recipient with an RFC 3464 DSN from <> to the sender via the bounce transport, and delivers the others", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay", (address) => (address === "bob@example.org" ? unknownUser : ok))
      const bounce = scripted("bounce")
      const spool = yield* Spool.make({
        dir, hostname: "mx.bridge.test", retry: fast, bounceTransport: "bounce",
        transports: new Map([["relay", relay.transport], ["bounce", bounce.transport]])
      })
      const queued = entry([{ transport: "relay", recipients: [recipient("bob@example.org"), recipient("carol@example.org")] }])
      yield* spool.enqueue(queued)

      yield* eventually(Effect.sync(() => bounce.calls.length), (n) => n === 1)
      yield* eventually(files(dir), (f) => f.length === 0)
      expect(relay.calls).toHaveLength(1)
      const dsn = bounce.calls[0]!
      expect(dsn.id).toBe(`${queued.id}.dsn1`)
      expect(dsn.mailFrom).toBeNull()
      expect(dsn.recipients).toEqual(["alice@example.com"])
      expect(dsn.text).toMatch(/^From: Mail Delivery System <MAILER-DAEMON@mx\.bridge\.test>\r\n/)
      expect(dsn.text).toContain("\r\nTo: <alice@example.com>\r\n")
      expect(dsn.text).toContain("\r\nSubject: Undelivered Mail Returned to Sender\r\n")
      expect(dsn.text).toContain("\r\nAuto-Submitted: auto-replied\r\n")
      const [perMessage, ...perRecipient] = deliveryStatus(dsn.text)
      expect(perMessage).toMatchObject({ "reporting-mta": "dns; mx.bridge.test" })
      expect(perRecipient).toEqual([{
        "final-recipient": "rfc822; bob@example.org",
        action: "failed",
        status: "5.1.1",
        "diagnostic-code": "smtp; 550 5.1.1 User unknown"
      }])
      // RET absent: the headers come back, not the body.
      expect(dsn.text).toContain("Content-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.com\r\nSubject: queued\r\n")
      expect(dsn.text).not.toContain("Hello from the spool.")
    }))

  it.scopedLive("returns the whole message in the DSN when the sender asked RET=FULL", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay", () => unknownUser)
      const bounce = scripted("default")
      const spool = yield* Spool.make({
        dir, hostname: "mx.bridge.test", retry: fast,
        transports: new Map([["relay", relay.transport], ["default", bounce.transport]])
      })
      yield* spool.enqueue(entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }], { ret: "FULL" }))
      yield* eventually(Effect.sync(() => bounce.calls.length), (n) => n === 1)
      expect(bounce.calls[0]!.text).toContain(`Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${body}`)
    }))

  it.scopedLive("never sends a DSN for a message from the null sender", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay", () => unknownUser)
      const bounce = scripted("default")
      const spool = yield* Spool.make({
        dir, hostname: "mx.bridge.test", retry: fast,
        transports: new Map([["relay", relay.transport], ["default", bounce.transport]])
      })
      yield* spool.enqueue(entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }], { from: null }))
      yield* eventually(files(dir), (f) => f.length === 0)
      yield* Effect.sleep("100 millis")
      expect(relay.calls).toHaveLength(1)
      expect(bounce.calls).toHaveLength(0)
    }))

  it.scopedLive("honours NOTIFY: no notice for NEVER nor for a list without FAILURE", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay", () => unknownUser)
      const bounce = scripted("default")
      const spool = yield* Spool.make({
        dir, hostname: "mx.bridge.test", retry: fast,
        transports: new Map([["relay", relay.transport], ["default", bounce.transport]])
      })
      yield* spool.enqueue(entry([{
        transport: "relay",
        recipients: [
          recipient("never@example.org", { notify: ["NEVER"] }),
          recipient("success@example.org", { notify: ["SUCCESS", "DELAY"] }),
          recipient("failure@example.org", { notify: ["FAILURE"] })
        ]
      }]))
      yield* eventually(files(dir), (f) => f.length === 0)
      expect(bounce.calls).toHaveLength(1)
      expect(deliveryStatus(bounce.calls[0]!.text).slice(1).map((g) => g["final-recipient"])).toEqual(["rfc822; failure@example.org"])

      yield* spool.enqueue(entry([{ transport: "relay", recipients: [recipient("never@example.org", { notify: ["NEVER"] })] }]))
      yield* eventually(files(dir), (f) => f.length === 0)
      yield* Effect.sleep("100 millis")
      expect(bounce.calls).toHaveLength(1)
    }))

  it.scopedLive("gives up after maxAge and bounces with Status 4.4.7 quoting the last reply", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const relay = scripted("relay", () => later)
      const bounce = scripted("default")
      const spool = yield* Spool.make({
        dir, hostname: "mx.bridge.test",
        retry: { initialDelay: "30 millis", maxDelay: "60 millis", maxAge: "150 millis" },
        transports: new Map([["relay", relay.transport], ["default", bounce.transport]])
      })
      const enqueued = Date.now()
      yield* spool.enqueue(entry([{ transport: "relay", recipients: [recipient("bob@example.org")] }]))
      yield* eventually(Effect.sync(() => bounce.calls.length), (n) => n === 1)
      yield* eventually(files(dir), (f) => f.length === 0)
      expect(relay.calls.length).toBeGreaterThanOrEqual(2)
      // Not given up before maxAge, counted from the enqueue (a late first attempt on a loaded
      // machine shortens the span between attempts, not the message's age).
      expect(relay.calls.at(-1)!.at - enqueued).toBeGreaterThanOrEqual(140)
      expect(deliveryStatus(bounce.calls[0]!.text)[1]).toEqual({
        "final-recipient": "rfc822; bob@example.org",
        action: "failed",
        status: "4.4.7",
        "diagnostic-code": "smtp; 451 4.3.0 Try again later"
      })
    }))

  it.scopedLive("delivers each transport's recipients in its own transaction", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const a = scripted("a")
      const b = scripted("b", (_, call) => (call === 1 ? later : ok))
      const spool = yield* Spool.make({ dir, hostname: "mx.bridge.test", retry: fast, transports: new Map([["a", a.transport], ["b", b.transport]]) })
      yield* spool.enqueue(entry([
        { transport: "a", recipients: [recipient("one@a.example")] },
        { transport: "b", recipients: [recipient("two@b.example")] }
      ]))
      yield* eventually(files(dir), (f) => f.length === 0)
      // Transport a's recipient is not offered again when only b needed a retry.
      expect(a.calls.map((c) => c.recipients)).toEqual([["one@a.example"]])
      expect(b.calls.map((c) => c.recipients)).toEqual([["two@b.example"], ["two@b.example"]])
    }))
})
