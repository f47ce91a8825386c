// The cookbook's plugins (docs/examples/), each tested as docs/plugins.md tells authors to test
// theirs: whole sessions through smtp-bridge/testing. The greylist and quotas share one store,
// in memory and in a real Redis.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Harness, script } from "smtp-bridge/testing"
import { allowList } from "../../../docs/examples/allow-list.ts"
import { archive } from "../../../docs/examples/archive.ts"
import { attachments } from "../../../docs/examples/attachments.ts"
import { greylist } from "../../../docs/examples/greylist.ts"
import { quotas } from "../../../docs/examples/quotas.ts"
import { sharedStore } from "../../../docs/examples/shared-store.ts"
import { startRedis, type TestRedis } from "../../support/redis.ts"

const rcpt = (s: Harness.Session, to: string) =>
  Effect.gen(function*() {
    yield* s.send("RSET")
    yield* s.send("MAIL FROM:<alice@example.org>")
    return yield* s.send(`RCPT TO:<${to}>`)
  })

let redis: TestRedis
beforeAll(async () => {
  redis = await startRedis()
}, 30_000)
afterAll(async () => {
  await redis.stop()
})

for (const backend of ["memory", "redis"] as const) {
  describe(`greylist and quotas on one ${backend} store`, () => {
    const store = () => sharedStore(backend === "redis" ? { redis: redis.url, prefix: `t${Date.now()}:` } : {})

    // Live clock: the delay really passes.
    it.live("greylists a new triplet with 451 4.7.1, again before the delay, and lets the retry after it through", () =>
      Harness.use({ plugins: [store(), greylist({ delay: "400 millis" })] }, (h) =>
        Effect.gen(function*() {
          const s = yield* h.open({ remoteAddress: "198.51.100.7" })
          yield* s.send("EHLO client.test")
          expect(yield* rcpt(s, "bob@corp.test")).toBe("451 4.7.1 Greylisted, please try again later")
          expect(yield* rcpt(s, "bob@corp.test")).toBe("451 4.7.1 Greylisted, please try again later")
          yield* Effect.sleep("500 millis")
          expect(yield* rcpt(s, "bob@corp.test")).toBe("250 2.1.5 Ok")
          // Another client of the same /24 is the same sender farm: already through.
          const t = yield* h.open({ remoteAddress: "198.51.100.99" })
          yield* t.send("EHLO client.test")
          expect(yield* rcpt(t, "bob@corp.test")).toBe("250 2.1.5 Ok")
          expect(yield* rcpt(t, "carol@corp.test")).toBe("451 4.7.1 Greylisted, please try again later")
        })))

    it.effect("counts recipients and messages per user per day: 452 4.2.2 past either", () =>
      Effect.gen(function*() {
        yield* script({ plugins: [store(), quotas({ messages: 1, recipients: 2 })], client: { remoteAddress: "192.0.2.44" } }, `
          S: 220
          C: EHLO client.test
          S: 250
          C: MAIL FROM:<alice@example.org>
          S: 250
          C: RCPT TO:<a@corp.test>
          S: 250 2.1.5 Ok
          C: RCPT TO:<b@corp.test>
          S: 250 2.1.5 Ok
          C: RCPT TO:<c@corp.test>
          S: 452 4.2.2 Daily recipient quota reached, try again tomorrow
          C: DATA
          S: 354
          C: Subject: one
          C:
          C: .
          S: 250
          C: MAIL FROM:<alice@example.org>
          S: 250
          C: RCPT TO:<a@corp.test>
          S: 452 4.2.2 Daily recipient quota reached, try again tomorrow
        `)
      }))
  })
}

describe("allow-list", () => {
  it.live("refuses a recipient not in the file with 550 5.1.1, and follows the file when it changes", () =>
    Effect.gen(function*() {
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "allow-")), "recipients.txt")
      fs.writeFileSync(file, "# staff\nbob@corp.test\n@sales.test\n")
      yield* Harness.use({ plugins: [allowList({ file, interval: "50 millis" })] }, (h) =>
        Effect.gen(function*() {
          const s = yield* h.open()
          yield* s.send("EHLO client.test")
          expect(yield* rcpt(s, "bob@corp.test")).toBe("250 2.1.5 Ok")
          expect(yield* rcpt(s, "anyone@SALES.test")).toBe("250 2.1.5 Ok")
          expect(yield* rcpt(s, "carol@corp.test")).toBe("550 5.1.1 No such recipient here: carol@corp.test")
          fs.writeFileSync(file, "bob@corp.test\ncarol@corp.test\n")
          yield* Effect.sleep("300 millis")
          expect(yield* rcpt(s, "carol@corp.test")).toBe("250 2.1.5 Ok")
          expect(yield* rcpt(s, "anyone@sales.test")).toBe("550 5.1.1 No such recipient here: anyone@sales.test")
          fs.rmSync(file)
          yield* Effect.sleep("200 millis")
          expect(yield* rcpt(s, "carol@corp.test")).toBe("250 2.1.5 Ok")
        }))
    }))

  it.effect("stops the start when the file is missing rather than refusing everyone", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Harness.use({ plugins: [allowList({ file: "/nonexistent/recipients.txt" })] }, () => Effect.void))
      expect(error._tag).toBe("PluginSetupError")
    }))
})

describe("archive", () => {
  it.effect("delivers each recipient as usual and a copy of the message to the archive transport", () =>
    Effect.gen(function*() {
      const t = yield* script({
        config: { hostname: "mx.test", trust: ["192.0.2.0/24"], transports: { archive: { type: "maildir", dir: "/unused" } }, plugins: [archive({ transport: "archive" })] }
      }, `
        S: 220
        C: EHLO client.test
        S: 250
        C: MAIL FROM:<alice@example.org>
        S: 250
        C: RCPT TO:<bob@corp.test>
        S: 250
        C: RCPT TO:<carol@corp.test>
        S: 250
        C: DATA
        S: 354
        C: Subject: keep me
        C:
        C: hi
        C: .
        S: 250 2.0.0 Ok: queued as
      `)
      expect(t.delivered.map((m) => [m.transport, m.recipients, m.header("Subject")])).toEqual([
        ["default", ["bob@corp.test", "carol@corp.test"], "keep me"],
        ["archive", ["bob@corp.test", "carol@corp.test"], "keep me"]
      ])
    }))
})

/** A message with one attachment named `name` (RFC 2231 encoded when `encoded`). */
const withAttachment = (name: string, encoded = false) =>
  [
    "Subject: invoice",
    "MIME-Version: 1.0",
    "Content-Type: multipart/mixed; boundary=\"b1\"",
    "",
    "--b1",
    "Content-Type: text/plain",
    "",
    "see attached",
    "--b1",
    "Content-Type: application/octet-stream",
    encoded ? `Content-Disposition: attachment; filename*=utf-8''${encodeURIComponent(name)}` : `Content-Disposition: attachment; filename="${name}"`,
    "Content-Transfer-Encoding: base64",
    "",
    "TVqQAAMAAAAEAAAA",
    "--b1--",
    ""
  ].join("\r\n")

describe("attachments", () => {
  const send = (text: string) =>
    Harness.use({ plugins: [attachments({})] }, (h) =>
      Effect.gen(function*() {
        const s = yield* h.open()
        for (const line of ["EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<b@corp.test>", "DATA"]) yield* s.send(line)
        return yield* s.message(text)
      }))

  it.effect("refuses an .exe attachment with 554 5.7.1, its name encoded or not, and passes a PDF", () =>
    Effect.gen(function*() {
      expect(yield* send(withAttachment("invoice.pdf.exe"))).toBe("554 5.7.1 Attachment type not allowed: invoice.pdf.exe")
      expect(yield* send(withAttachment("résumé.JS", true))).toBe("554 5.7.1 Attachment type not allowed: résumé.JS")
      expect(yield* send(withAttachment("invoice.pdf"))).toMatch(/^250 2\.0\.0 Ok: queued as /)
      expect(yield* send("Subject: plain\r\n\r\nno attachment\r\n")).toMatch(/^250 /)
    }))
})
