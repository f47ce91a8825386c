/**
 * The test kit's promise to plugin authors: it needs no particular test runner. These checks run
 * under `bun test` (bun_test.ts) and `deno test` (deno_test.ts); test/e2e/testing-runners.test.ts
 * starts both runners and requires them to pass.
 */
import { Effect } from "effect"
import { definePlugin, Verdict } from "smtp-bridge"
import { Contexts, script } from "smtp-bridge/testing"

const noExample = definePlugin({
  name: "no-example",
  rcptTo: ({ recipient }) =>
    Effect.succeed(recipient.mailbox.domain === "example.com" ? Verdict.reject("No mail for example.com", { code: 550, enhanced: "5.1.2" }) : Verdict.Continue)
})

const check = (ok: boolean, what: string): void => {
  if (!ok) throw new Error(`failed: ${what}`)
}

export const cases: ReadonlyArray<readonly [string, () => Promise<void>]> = [
  ["a hook runs against a one-line context", async () => {
    const verdict = await Effect.runPromise(noExample.rcptTo(Contexts.rcptTo("bob@example.com")))
    check(verdict._tag === "Reject", "rcptTo rejects bob@example.com")
  }],
  ["a scripted session delivers the accepted recipient only", async () => {
    const t = await Effect.runPromise(script({ plugins: [noExample] }, `
      S: 220
      C: EHLO client.test
      S: 250
      C: MAIL FROM:<alice@example.org>
      S: 250 2.1.0 Ok
      C: RCPT TO:<bob@example.com>
      S: 550 5.1.2 No mail for example.com
      C: RCPT TO:<carol@example.net>
      S: 250 2.1.5 Ok
      C: DATA
      S: 354
      C: Subject: hi
      C:
      C: hello
      C: .
      S: 250
    `))
    check(t.delivered.length === 1 && t.delivered[0]!.recipients.join() === "carol@example.net", "one message, to carol")
  }],
  ["a wrong expectation fails the script", async () => {
    const failed = await Effect.runPromise(Effect.flip(script({ plugins: [noExample] }, "S: 220\nC: EHLO client.test\nS: 550")))
    check(failed.message.startsWith("line 3: expected S: 550, got S: 250"), failed.message)
  }]
]
