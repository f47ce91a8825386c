import { expect, layer } from "@effect/vitest"
import * as Resolver from "../../../src/dns/Resolver.ts"
import { Effect } from "effect"
import { relayPolicy } from "../../../plugins/relay-policy/index.ts"
import { Relay, Verdict } from "../../../src/index.ts"
import type { Hooks, Plugin } from "../../../src/index.ts"
import { Contexts, script } from "smtp-bridge/testing"

const hook = <K extends "connect" | "mailFrom" | "rcptTo">(plugin: Plugin, name: K): NonNullable<Hooks[K]> => {
  const h = plugin[name]
  if (h === undefined) throw new Error(`relay-policy has no ${name} hook`)
  return h
}

const plugin = relayPolicy({ trust: ["127.0.0.1", "::1", "10.0.0.0/8"] })
const connect = hook(plugin, "connect")
const mailFrom = hook(plugin, "mailFrom")
const rcptTo = hook(plugin, "rcptTo")

const connected = (remoteAddress: string, user?: string) =>
  Effect.gen(function*() {
    const s = Contexts.session({ remoteAddress, user })
    expect(yield* connect({ session: s })).toEqual(Verdict.Continue)
    return s
  })

layer(Resolver.layer())("relay-policy", (it) => {
  it("throws at creation naming an invalid network", () => {
    expect(() => relayPolicy({ trust: ["10.0.0.0/8", "10.0.0.0/64"] })).toThrow(/relay-policy: invalid CIDR "10.0.0.0\/64"/)
  })

  it.effect("marks a client in a trusted network with Relay.Trusted and continues", () =>
    Effect.gen(function*() {
      const s = yield* connected("10.1.2.3")
      expect(s.notes.get(Relay.Trusted)).toBe(true)
    }))

  it.effect("treats an IPv4-mapped client address as IPv4", () =>
    Effect.gen(function*() {
      const s = yield* connected("::ffff:127.0.0.1")
      expect(s.notes.get(Relay.Trusted)).toBe(true)
    }))

  it.effect("leaves a client outside the trusted networks unmarked", () =>
    Effect.gen(function*() {
      const s = yield* connected("203.0.113.5")
      expect(s.notes.get(Relay.Trusted)).toBeUndefined()
    }))

  it.effect("rejects MAIL FROM an untrusted unauthenticated client with 530 5.7.0", () =>
    Effect.gen(function*() {
      const s = yield* connected("203.0.113.5")
      const verdict = yield* mailFrom({ session: s, from: Contexts.mailbox("a@example.org"), params: { raw: {} } })
      expect(verdict).toEqual(Verdict.Reject({ code: 530, enhanced: "5.7.0", text: "Authentication required" }))
    }))

  it.effect("rejects RCPT TO from an untrusted unauthenticated client with 554 5.7.1", () =>
    Effect.gen(function*() {
      const s = yield* connected("203.0.113.5")
      const verdict = yield* rcptTo({ session: s, transaction: Contexts.transaction(), recipient: Contexts.recipient("b@example.net") })
      expect(verdict).toEqual(Verdict.Reject({ code: 554, enhanced: "5.7.1", text: "Relay access denied" }))
    }))

  it.effect("continues MAIL and RCPT for an authenticated client from anywhere", () =>
    Effect.gen(function*() {
      const s = yield* connected("203.0.113.5", "alice")
      expect(yield* mailFrom({ session: s, from: Contexts.mailbox("a@example.org"), params: { raw: {} } })).toEqual(Verdict.Continue)
      expect(yield* rcptTo({ session: s, transaction: Contexts.transaction(), recipient: Contexts.recipient("b@example.net") }))
        .toEqual(Verdict.Continue)
    }))

  it.effect("continues MAIL and RCPT for a trusted client without AUTH", () =>
    Effect.gen(function*() {
      const s = yield* connected("::1")
      expect(yield* mailFrom({ session: s, from: null, params: { raw: {} } })).toEqual(Verdict.Continue)
      expect(yield* rcptTo({ session: s, transaction: Contexts.transaction(), recipient: Contexts.recipient("b@example.net") }))
        .toEqual(Verdict.Continue)
    }))

  it.effect("honours Relay.Trusted set by another plugin", () =>
    Effect.gen(function*() {
      const s = Contexts.session({ remoteAddress: "198.51.100.7" })
      s.notes.set(Relay.Trusted, true)
      expect(yield* rcptTo({ session: s, transaction: Contexts.transaction(), recipient: Contexts.recipient("b@example.net") }))
        .toEqual(Verdict.Continue)
    }))

  it.effect("in a whole session: a stranger gets 530 5.7.0 at MAIL, a trusted network sends", () =>
    Effect.gen(function*() {
      const plugins = [relayPolicy({ trust: ["192.0.2.0/24"] })]
      yield* script({ plugins, client: { remoteAddress: "198.51.100.7", trusted: false } }, `
        S: 220
        C: EHLO client.test
        S: 250
        C: MAIL FROM:<a@example.org>
        S: 530 5.7.0 Authentication required
      `)
      const t = yield* script({ plugins, client: { remoteAddress: "192.0.2.20", trusted: false } }, `
        S: 220
        C: EHLO client.test
        S: 250
        C: MAIL FROM:<a@example.org>
        S: 250 2.1.0 Ok
        C: RCPT TO:<b@example.net>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354
        C: Subject: relayed
        C:
        C: hi
        C: .
        S: 250 2.0.0 Ok: queued as
      `)
      expect(t.delivered.map((m) => m.recipients)).toEqual([["b@example.net"]])
    }))
})
