import { expect, layer } from "@effect/vitest"
import * as Resolver from "../../../src/dns/Resolver.ts"
import { Effect } from "effect"
import { noExampleDotCom } from "../../../docs/examples/no-example-dot-com.ts"
import { Verdict } from "../../../src/index.ts"
import { Contexts, script } from "smtp-bridge/testing"

// The example from docs/plugins.md, tested the way the guide tells authors to test theirs.
const rcpt = (address: string, domains?: Array<string>) =>
  noExampleDotCom(domains === undefined ? {} : { domains }).rcptTo(Contexts.rcptTo(address, { session: { user: "alice" } }))

layer(Resolver.layer())("no-example-dot-com (docs example)", (it) => {
  it.effect("rejects RCPT TO a reserved example domain with 550 5.1.2", () =>
    Effect.gen(function*() {
      expect(yield* rcpt("bob@Example.COM")).toEqual(
        Verdict.Reject({ code: 550, enhanced: "5.1.2", text: "Domain Example.COM does not accept mail" })
      )
      expect(yield* rcpt("bob@mail.example.net")).toMatchObject({ _tag: "Reject", code: 550 })
    }))

  it.effect("continues RCPT TO other domains, and only refuses the configured ones", () =>
    Effect.gen(function*() {
      expect(yield* rcpt("bob@notexample.com")).toEqual(Verdict.Continue)
      expect(yield* rcpt("bob@example.org", ["example.com"])).toEqual(Verdict.Continue)
    }))

  it.effect("in a whole session: 550 5.1.2 for the example domain, the others get the message", () =>
    Effect.gen(function*() {
      const t = yield* script({ plugins: [noExampleDotCom()] }, `
        S: 220
        C: EHLO client.test
        S: 250
        C: MAIL FROM:<alice@example.org>
        S: 250 2.1.0 Ok
        C: RCPT TO:<bob@example.com>
        S: 550 5.1.2 Domain example.com does not accept mail
        C: RCPT TO:<carol@corp.test>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354
        C: Subject: hi
        C:
        C: hello
        C: .
        S: 250
      `)
      expect(t.delivered.map((m) => m.recipients)).toEqual([["carol@corp.test"]])
    }))
})
