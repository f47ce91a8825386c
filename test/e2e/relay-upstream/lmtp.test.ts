// The LMTP transport against Dovecot's LMTP server: one reply per recipient, over TCP and over
// its unix socket. Dovecot's userdb knows "known" and "second" only.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as SmtpRelay from "../../../src/transport/smtp/SmtpRelay.ts"
import * as Url from "../../../src/transport/smtp/Url.ts"
import { type Dovecot, dovecotAvailable, startDovecot } from "../../support/dovecot.ts"
import { needTool } from "../../support/tools.ts"
import { outgoing } from "../../support/sink.ts"

const lmtp = (url: string) =>
  SmtpRelay.make({ target: Either.getOrThrow(Url.parse(url)), name: "lmtp", helo: "bridge.test", timeouts: { command: "10 seconds" } })

const message = "Subject: lmtp\r\n\r\n.leading dot\r\nbody\r\n"

describe.skipIf(!needTool("dovecot (tests run as root)", dovecotAvailable()))("LMTP to dovecot", () => {
  let dovecot: Dovecot
  beforeAll(async () => {
    dovecot = await startDovecot({ users: ["known", "second"] })
  })
  afterAll(async () => {
    await dovecot?.stop()
  })

  it.scopedLive("gives the known recipient dovecot's 250 2.0.0 Saved and the unknown one its 550 5.1.1 from RCPT", () =>
    Effect.gen(function*() {
      const before = dovecot.delivered("known").length
      const transport = yield* lmtp(`lmtp://127.0.0.1:${dovecot.port}`)
      const report = yield* transport.deliver(outgoing([message], { to: ["known@example.net", "nobody-here@example.net"] }))
      const [known, unknown] = report.recipients
      expect(known!.recipient.mailbox.address).toBe("known@example.net")
      expect(known!.reply).toMatchObject({ code: 250, enhanced: "2.0.0" })
      expect(known!.reply.lines.join(" ")).toContain("Saved")
      expect(unknown!.recipient.mailbox.address).toBe("nobody-here@example.net")
      expect(unknown!.reply).toMatchObject({ code: 550, enhanced: "5.1.1" })
      const box = dovecot.delivered("known")
      expect(box).toHaveLength(before + 1)
      expect(box.at(-1)).toContain("\n.leading dot\n")
    }))

  it.scopedLive("reads one reply per accepted recipient after DATA, in RCPT order", () =>
    Effect.gen(function*() {
      const transport = yield* lmtp(`lmtp://127.0.0.1:${dovecot.port}`)
      const report = yield* transport.deliver(outgoing([message], { to: ["second@example.net", "ghost@example.net", "known@example.net"] }))
      expect(report.recipients.map((r) => [r.recipient.mailbox.address, r.reply.code])).toEqual([
        ["second@example.net", 250],
        ["ghost@example.net", 550],
        ["known@example.net", 250]
      ])
      for (const r of [report.recipients[0]!, report.recipients[2]!]) {
        expect(r.reply.lines.join(" ")).toContain(`<${r.recipient.mailbox.address.split("@")[0]}`)
      }
    }))

  it.scopedLive("delivers over dovecot's unix socket (lmtp:///path), reusing the session for a second message", () =>
    Effect.gen(function*() {
      const before = dovecot.delivered("second").length
      const transport = yield* lmtp(`lmtp://${dovecot.socket}`)
      for (const id of ["U1", "U2"]) {
        const report = yield* transport.deliver(outgoing([message], { id, to: ["second@example.net"] }))
        expect(report.recipients[0]!.reply.code).toBe(250)
      }
      expect(dovecot.delivered("second")).toHaveLength(before + 2)
    }))
})
