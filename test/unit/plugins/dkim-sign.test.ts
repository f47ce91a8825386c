import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { dkimSign, keysFor } from "../../../plugins/dkim-sign/index.ts"
import type { DkimSignOptions } from "../../../plugins/dkim-sign/index.ts"
import * as Keys from "../../../src/dkim/Keys.ts"
import * as Static from "../../../src/dns/Static.ts"
import { Senders, Verdict } from "../../../src/index.ts"
import type { SessionInfo, TransactionInfo } from "../../../src/index.ts"
import { Contexts } from "smtp-bridge/testing"

const rsa = Keys.keygen({ algorithm: "rsa", domain: "example.org", selector: "rsa1", bits: 1024 })
const ed = Keys.keygen({ algorithm: "ed25519", domain: "example.org", selector: "ed1" })

// The client of `Contexts.session()` (203.0.113.5) may have anything signed, unless a test says otherwise.
const everything = { "203.0.113.0/24": ["*"] }

/** Runs setup, then the data hook over a message whose header section starts with `head`. */
const signAs = (
  from: string,
  options: DkimSignOptions,
  context: { readonly session?: SessionInfo; readonly transaction?: TransactionInfo; readonly head?: string } = {}
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const hooks = yield* Scope.extend(dkimSign({ trustedFrom: everything, ...options }).setup!, scope)
    const head = context.head ?? `From: ${from}\r\n`
    const ctx = Contexts.data(`${head}Subject: hi\r\n\r\nbody\r\n`, { session: context.session ?? Contexts.session(), transaction: context.transaction ?? Contexts.transaction() })
    const { added } = ctx
    const verdict = yield* hooks.data!(ctx)
    yield* Scope.close(scope, Exit.void)
    return { verdict, added }
  })

layer(Static.layer({}))("dkim-sign", (it) => {
  it.effect("adds one DKIM-Signature per key of the From domain, the first key's on top", () =>
    Effect.gen(function*() {
      const { verdict, added } = yield* signAs("Alice <alice@Example.org>", {
        keys: [
          { domain: "example.org", selector: "rsa1", privateKey: rsa.privateKeyPem },
          { domain: "example.org", selector: "ed1", privateKey: ed.privateKeyPem }
        ]
      })
      expect(verdict).toEqual(Verdict.Continue)
      // added[] is in adding order; the bridge renders the last added on top.
      expect(added.map((a) => /s=(\w+)/.exec(a.value)?.[1])).toEqual(["ed1", "rsa1"])
      expect(added.every((a) => a.name === "DKIM-Signature")).toBe(true)
    }))

  it.effect("signs a message held in memory and one read from a spill file alike", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const hooks = yield* Scope.extend(
        dkimSign({ trustedFrom: everything, keys: [{ domain: "example.org", selector: "ed1", privateKey: ed.privateKeyPem }] }).setup!,
        scope
      )
      const text = "From: a@example.org\r\nSubject: hi\r\n\r\nline  one \r\n\r\nline two\r\n\r\n"
      const inMemory = Contexts.data(text)
      expect(inMemory.edit.bodyInMemory()).toBeDefined()
      const draft = Contexts.data(text)
      // The same message, its body readable only as a stream (as after a spill).
      const streamed = { ...draft, edit: { ...draft.edit, bodyInMemory: () => undefined } }
      yield* hooks.data!(inMemory)
      yield* hooks.data!(streamed)
      yield* Scope.close(scope, Exit.void)
      expect(inMemory.added).toHaveLength(1)
      expect(streamed.added).toEqual(inMemory.added)
      expect(inMemory.added[0]!.value).toContain("bh=")
    }))

  it.effect("signs a subdomain with its parent's key unless subdomains is off", () =>
    Effect.gen(function*() {
      const keys = [{ domain: "example.org", selector: "ed1", privateKey: ed.privateKeyPem }]
      expect((yield* signAs("a@news.example.org", { keys })).added).toHaveLength(1)
      expect((yield* signAs("a@news.example.org", { keys, subdomains: false })).added).toHaveLength(0)
    }))

  it.effect("passes mail from a domain without a key unsigned, or rejects it with 550 5.7.1", () =>
    Effect.gen(function*() {
      const keys = [{ domain: "example.org", selector: "ed1", privateKey: ed.privateKeyPem }]
      expect(yield* signAs("eve@other.test", { keys })).toEqual({ verdict: Verdict.Continue, added: [] })
      expect((yield* signAs("eve@other.test", { keys, unsigned: "reject" })).verdict).toEqual(
        Verdict.reject("No DKIM key for other.test: this server does not send mail from that domain", { code: 550, enhanced: "5.7.1" })
      )
    }))

  it.effect("signs nothing for a client without AUTH by default, and only what its network's trustedFrom entry allows", () =>
    Effect.gen(function*() {
      const keys = [{ domain: "example.org", selector: "ed1", privateKey: ed.privateKeyPem }]
      expect((yield* signAs("a@example.org", { keys, trustedFrom: {} })).added).toHaveLength(0)
      const trustedFrom = { "203.0.113.0/28": ["@example.org"], "198.51.100.0/24": ["*"] }
      expect((yield* signAs("a@example.org", { keys, trustedFrom })).added).toHaveLength(1)
      // A Sender the entry does not allow, an address of another domain, another network: unsigned.
      expect((yield* signAs("", { keys, trustedFrom }, { head: "From: a@example.org\r\nSender: x@other.test\r\n" })).added).toHaveLength(0)
      expect((yield* signAs("a@example.org, b@other.test", { keys, trustedFrom })).added).toHaveLength(0)
      expect((yield* signAs("a@example.org", { keys, trustedFrom }, { session: Contexts.session({ remoteAddress: "203.0.113.99" }) })).added).toHaveLength(0)
    }))

  it.effect("signs an authenticated user's message only when sender-identity allowed its header From", () =>
    Effect.gen(function*() {
      const keys = [{ domain: "example.org", selector: "ed1", privateKey: ed.privateKeyPem }]
      const alice = Contexts.session({ user: "alice" })
      expect((yield* signAs("a@example.org", { keys }, { session: alice })).added).toHaveLength(0)
      const checked = Contexts.transaction()
      checked.notes.set(Senders.HeaderFromAllowed, true)
      expect((yield* signAs("a@example.org", { keys }, { session: alice, transaction: checked })).added).toHaveLength(1)
    }))

  it.effect("never signs a message with two From fields, or a From that is no address list", () =>
    Effect.gen(function*() {
      const keys = [{ domain: "example.org", selector: "ed1", privateKey: ed.privateKeyPem }]
      expect((yield* signAs("", { keys }, { head: "From: a@example.org\r\nFrom: ceo@example.org\r\n" })).added).toHaveLength(0)
      expect((yield* signAs("a@example.org <ceo@example.org>", { keys })).added).toHaveLength(0)
      expect((yield* signAs("a@example.org", { keys, unsigned: "reject" }, { head: "From: a@example.org\r\nfrom: b@example.org\r\n" })).verdict)
        .toEqual(Verdict.reject("Message has no From address to sign for", { code: 550, enhanced: "5.7.1" }))
    }))

  it("throws at creation naming a trustedFrom network or sender that is invalid", () => {
    const keys = [{ domain: "example.org", selector: "ed1", privateKey: ed.privateKeyPem }]
    expect(() => dkimSign({ keys, trustedFrom: { "10.0.0.0/33": ["*"] } })).toThrow(/dkim-sign: trustedFrom: invalid network "10\.0\.0\.0\/33"/)
    expect(() => dkimSign({ keys, trustedFrom: { "10.0.0.0/8": ["example.org"] } })).toThrow(/invalid sender "example\.org"/)
  })

  it.effect("fails setup with DkimSignError naming the key when the file is missing or not a key", () =>
    Effect.gen(function*() {
      const missing = yield* Effect.flip(Effect.scoped(dkimSign({ keys: [{ domain: "example.org", selector: "s", keyFile: "/nonexistent.pem" }] }).setup!))
      expect(missing).toMatchObject({ _tag: "DkimSignError", reason: "Read" })
      expect(String((missing as { message: string }).message)).toContain("s._domainkey.example.org")
      const garbage = yield* Effect.flip(Effect.scoped(dkimSign({ keys: [{ domain: "example.org", selector: "s", privateKey: "nope" }] }).setup!))
      expect(garbage).toMatchObject({ _tag: "DkimSignError", reason: "Key" })
    }))
})

describe("dkim-sign helpers", () => {
  it("picks the nearest parent's keys for a subdomain", () => {
    const key = Keys.privateKeyOf(ed.privateKeyPem)
    const keys = [{ domain: "example.org", selector: "a", key }, { domain: "mail.example.org", selector: "b", key }]
    expect(keysFor(keys, "x.mail.example.org", true).map((k) => k.selector)).toEqual(["b"])
    expect(keysFor(keys, "example.org", true).map((k) => k.selector)).toEqual(["a"])
    expect(keysFor(keys, "org", true)).toEqual([])
  })
})
