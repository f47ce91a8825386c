import { expect, layer } from "@effect/vitest"
import * as Resolver from "../../../src/dns/Resolver.ts"
import { Effect } from "effect"
import { senderIdentity } from "../../../plugins/sender-identity/index.ts"
import { Senders, Verdict } from "../../../src/index.ts"
import type { SenderIdentityOptions } from "../../../plugins/sender-identity/index.ts"
import { Contexts } from "smtp-bridge/testing"

const check = (options: SenderIdentityOptions, user: string | undefined, from: string | null) => {
  const mailFrom = senderIdentity(options).mailFrom
  if (mailFrom === undefined) throw new Error("sender-identity has no mailFrom hook")
  return mailFrom({ session: Contexts.session({ user }), from: from === null ? null : Contexts.mailbox(from), params: { raw: {} } })
}

const rejected = (user: string) =>
  Verdict.Reject({ code: 553, enhanced: "5.7.1", text: `Sender address rejected: not owned by user ${user}` })

const senders = {
  alice: ["alice@example.com", "@alice.example"],
  robot: ["*"],
  "carol@example.org": ["carol@example.org", "billing@example.org"]
}

layer(Resolver.layer())("sender-identity", (it) => {
  it.effect("continues MAIL FROM an exact address the user owns, ignoring case", () =>
    Effect.gen(function*() {
      expect(yield* check({ senders }, "alice", "alice@example.com")).toEqual(Verdict.Continue)
      expect(yield* check({ senders }, "alice", "Alice@EXAMPLE.com")).toEqual(Verdict.Continue)
    }))

  it.effect("continues MAIL FROM any local part at an @domain entry", () =>
    Effect.gen(function*() {
      expect(yield* check({ senders }, "alice", "anything+tag@Alice.Example")).toEqual(Verdict.Continue)
    }))

  it.effect("continues MAIL FROM anything for a * entry", () =>
    Effect.gen(function*() {
      expect(yield* check({ senders }, "robot", "whoever@wherever.test")).toEqual(Verdict.Continue)
    }))

  it.effect("rejects MAIL FROM another user's address with 553 5.7.1", () =>
    Effect.gen(function*() {
      expect(yield* check({ senders }, "alice", "carol@example.org")).toEqual(rejected("alice"))
      expect(yield* check({ senders }, "alice", "alice@sub.alice.example")).toEqual(rejected("alice"))
      expect(yield* check({ senders }, "alice", "alice@example.com.evil.test")).toEqual(rejected("alice"))
    }))

  it.effect("limits a listed user to the entries even when the user name is an address", () =>
    Effect.gen(function*() {
      expect(yield* check({ senders }, "carol@example.org", "billing@example.org")).toEqual(Verdict.Continue)
      expect(yield* check({ senders }, "carol@example.org", "sales@example.org")).toEqual(rejected("carol@example.org"))
    }))

  it.effect("lets an unlisted user whose name is an address send as that address only", () =>
    Effect.gen(function*() {
      expect(yield* check({ senders }, "dave@example.net", "Dave@Example.NET")).toEqual(Verdict.Continue)
      expect(yield* check({ senders }, "dave@example.net", "eve@example.net")).toEqual(rejected("dave@example.net"))
    }))

  it.effect("rejects every MAIL FROM of an unlisted user whose name is not an address with 553 5.7.1", () =>
    Effect.gen(function*() {
      expect(yield* check({ senders }, "frank", "frank@example.com")).toEqual(rejected("frank"))
    }))

  it.effect("continues the null sender <> for an authenticated user", () =>
    Effect.gen(function*() {
      expect(yield* check({ senders }, "frank", null)).toEqual(Verdict.Continue)
    }))

  it.effect("continues unauthenticated sessions (relay-policy decides those)", () =>
    Effect.gen(function*() {
      expect(yield* check({ senders }, undefined, "anyone@example.com")).toEqual(Verdict.Continue)
    }))

  it.effect("notes a header From and Sender the user owns, and refuses or only leaves unnoted one they do not", () =>
    Effect.gen(function*() {
      const run = (options: SenderIdentityOptions, head: string) =>
        Effect.gen(function*() {
          const t = Contexts.transaction()
          const ctx = Contexts.data(`${head}Subject: hi\r\n\r\nbody\r\n`, { session: Contexts.session({ user: "alice" }), transaction: t })
          const verdict = yield* senderIdentity(options).data!(ctx)
          return { verdict, noted: t.notes.get(Senders.HeaderFromAllowed) === true }
        })
      expect(yield* run({ senders }, "From: Alice <alice@example.com>\r\nSender: x@alice.example\r\n")).toEqual({ verdict: Verdict.Continue, noted: true })
      expect(yield* run({ senders }, "From: \"alice@example.com\" <ceo@example.com>\r\n")).toEqual({
        verdict: Verdict.Reject({ code: 550, enhanced: "5.7.1", text: "Header From rejected: ceo@example.com is not owned by user alice" }),
        noted: false
      })
      expect(yield* run({ senders, forgedFrom: "unsigned" }, "From: ceo@example.com\r\n")).toEqual({ verdict: Verdict.Continue, noted: false })
    }))

  it("throws at creation naming an invalid entry and its user", () => {
    expect(() => senderIdentity({ senders: { alice: ["example.com"] } }))
      .toThrow(/sender-identity: invalid sender "example.com" for user "alice"/)
    expect(() => senderIdentity({ senders: { alice: ["@"] } })).toThrow(/invalid sender "@"/)
  })

  const granted = (user: string, grantedTo: string, entries: ReadonlyArray<string>, from: string) => {
    const s = Contexts.session({ user })
    Senders.grant(s.notes, grantedTo, entries)
    return senderIdentity({ senders }).mailFrom!({ session: s, from: Contexts.mailbox(from), params: { raw: {} } })
  }

  it.effect("continues MAIL FROM an address the user's authentication backend granted, besides the configured ones", () =>
    Effect.gen(function*() {
      expect(yield* granted("dave", "dave", ["dave@example.net", "@dave.example"], "x@Dave.Example")).toEqual(Verdict.Continue)
      expect(yield* granted("alice", "alice", ["alias@example.org"], "alias@example.org")).toEqual(Verdict.Continue)
      expect(yield* granted("alice", "alice", ["alias@example.org"], "alice@example.com")).toEqual(Verdict.Continue)
    }))

  it.effect("rejects MAIL FROM with 553 5.7.1 when the grant was for another identity (an earlier login on the session)", () =>
    Effect.gen(function*() {
      expect(yield* granted("dave", "erin", ["dave@example.net"], "dave@example.net")).toEqual(rejected("dave"))
    }))
})
