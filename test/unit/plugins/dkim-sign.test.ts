import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { dkimSign, fromDomain, keysFor } from "../../../plugins/dkim-sign/index.ts"
import type { DkimSignOptions } from "../../../plugins/dkim-sign/index.ts"
import * as Keys from "../../../src/dkim/Keys.ts"
import * as Static from "../../../src/dns/Static.ts"
import { Verdict } from "../../../src/index.ts"
import { data, session, transaction } from "./context.ts"

const rsa = Keys.keygen({ algorithm: "rsa", domain: "example.org", selector: "rsa1", bits: 1024 })
const ed = Keys.keygen({ algorithm: "ed25519", domain: "example.org", selector: "ed1" })

/** Runs setup, then the data hook over a message From `from`. */
const signAs = (from: string, options: DkimSignOptions) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const hooks = yield* Scope.extend(dkimSign(options).setup!, scope)
    const { ctx, added } = data(session(), transaction(), `From: ${from}\r\nSubject: hi\r\n\r\nbody\r\n`)
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
  it("reads the From domain from angle addresses and bare ones", () => {
    expect(fromDomain(`"Doe, J" <j@Example.ORG>`)).toBe("example.org")
    expect(fromDomain("j@example.org (J)")).toBe("example.org")
    expect(fromDomain("undisclosed")).toBeUndefined()
  })

  it("picks the nearest parent's keys for a subdomain", () => {
    const key = Keys.privateKeyOf(ed.privateKeyPem)
    const keys = [{ domain: "example.org", selector: "a", key }, { domain: "mail.example.org", selector: "b", key }]
    expect(keysFor(keys, "x.mail.example.org", true).map((k) => k.selector)).toEqual(["b"])
    expect(keysFor(keys, "example.org", true).map((k) => k.selector)).toEqual(["a"])
    expect(keysFor(keys, "org", true)).toEqual([])
  })
})
