import { expect, layer } from "@effect/vitest"
import * as Resolver from "../../../src/dns/Resolver.ts"
import { Effect } from "effect"
import { noExampleDotCom } from "../../../docs/examples/no-example-dot-com.ts"
import { Verdict } from "../../../src/index.ts"
import { recipient, session, transaction } from "./context.ts"

// The example from docs/plugins.md, tested the way the guide tells authors to test theirs.
const rcpt = (address: string, domains?: Array<string>) => {
  const rcptTo = noExampleDotCom(domains === undefined ? {} : { domains }).rcptTo
  if (rcptTo === undefined) throw new Error("no rcptTo hook")
  return rcptTo({ session: session({ user: "alice" }), transaction: transaction(), recipient: recipient(address) })
}

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
})
