/** DATA (RFC 5321 4.1.1.4) and BDAT (RFC 3030), and the end of a message, as the session machine applies them. */
import { describe, expect, it } from "@effect/vitest"
import * as Verdict from "../../../src/pipeline/Verdict.ts"
import * as Reply from "../../../src/protocol/Reply.ts"
import { ready } from "./driver.ts"

const open = (d: ReturnType<typeof ready>) => d.script("MAIL FROM:<a@client.test>", "RCPT TO:<b@dest.test>")

describe("DATA", () => {
  it("answers 354, opens a message buffer and switches the decoder to content", () => {
    const d = ready()
    open(d)
    expect(d.send("DATA")).toEqual(["354 End data with <CR><LF>.<CR><LF>"])
    expect(d.actions.slice(-2)).toEqual([{ _tag: "OpenMessage" }, { _tag: "ReceiveData" }])
  })

  it("at the final dot: seals, asks the data hooks, delivers, and sends the delivery's reply", () => {
    const d = ready()
    open(d)
    d.send("DATA")
    expect(d.endContent()).toEqual(["250 2.0.0 Ok: queued as TX1"])
    expect(d.actions.slice(-4).map((a) => (a._tag === "Run" ? `Run ${a.hook}` : a._tag))).toEqual(["Seal", "Run data", "Deliver", "DropMessage"])
    expect(d.state.tx).toBeUndefined()
    expect(d.events.at(-1)).toEqual({ _tag: "Ended", id: "TX1", outcome: "accepted", code: 250 })
  })

  it("lets a new transaction start after the message: MAIL is 250 again", () => {
    const d = ready()
    open(d)
    d.send("DATA")
    d.endContent()
    expect(d.send("MAIL FROM:<a@client.test>")).toEqual(["250 2.1.0 Ok"])
  })

  it("ends the transaction with the message's final reply: RCPT and DATA get 503 5.5.1 until a new MAIL (4.1.1.4)", () => {
    for (const delivered of [undefined, Reply.make(451, "4.3.0", "Try again later")]) {
      const d = ready(delivered === undefined ? {} : { delivered })
      open(d)
      d.send("DATA")
      d.endContent()
      expect(d.send("RCPT TO:<c@dest.test>")).toEqual(["503 5.5.1 Need MAIL before RCPT"])
      expect(d.send("DATA")).toEqual(["503 5.5.1 Need MAIL command"])
    }
  })

  it("refuses a message over the size limit with 552 5.3.4 once it is read", () => {
    const d = ready()
    open(d)
    d.send("DATA")
    expect(d.endContent({ tooBig: true })).toEqual(["552 5.3.4 Message size exceeds fixed maximum message size"])
    expect(d.has("Seal")).toBe(false)
    expect(d.events.at(-1)).toMatchObject({ outcome: "rejected", code: 552 })
  })

  it("refuses bare CR or LF with 550 5.6.0 under the reject policy, and passes them under normalize", () => {
    const strict = ready({ settings: { bareLineEndings: "reject" } })
    open(strict)
    strict.send("DATA")
    expect(strict.endContent({ bare: true })).toEqual(["550 5.6.0 Message contains bare CR or LF line endings"])
    const lenient = ready()
    open(lenient)
    lenient.send("DATA")
    expect(lenient.endContent({ bare: true })).toEqual(["250 2.0.0 Ok: queued as TX1"])
  })

  it("answers a storage failure with 451 4.3.0 and a header section over 256 KiB with 552 5.3.4", () => {
    const write = ready()
    open(write)
    write.send("DATA")
    expect(write.endContent({ storageFailed: true })).toEqual(["451 4.3.0 Temporary storage failure, please try again later"])
    const sealFails = ready({ sealed: "failed" })
    open(sealFails)
    sealFails.send("DATA")
    expect(sealFails.endContent()).toEqual(["451 4.3.0 Temporary storage failure, please try again later"])
    const headers = ready({ sealed: "headerTooLarge" })
    open(headers)
    headers.send("DATA")
    expect(headers.endContent()).toEqual(["552 5.3.4 Message header section exceeds 256 KiB"])
  })

  it("answers a data hook's refusal with its reply, logged, and delivers nothing", () => {
    const d = ready({ hooks: { data: () => Verdict.reject("Spam", { code: 550, enhanced: "5.7.1" }) } })
    open(d)
    d.send("DATA")
    expect(d.endContent()).toEqual(["550 5.7.1 Spam"])
    expect(d.has("Deliver")).toBe(false)
    expect(d.has("DropMessage")).toBe(true)
  })

  it("sends a failed delivery's reply (4xx) and ends the transaction as rejected", () => {
    const d = ready({ delivered: Reply.make(451, "4.4.1", "Upstream unreachable") })
    open(d)
    d.send("DATA")
    expect(d.endContent()).toEqual(["451 4.4.1 Upstream unreachable"])
    expect(d.events.at(-1)).toMatchObject({ outcome: "rejected", code: 451 })
  })

  it("drops the message when the connection ends in the middle of it", () => {
    const d = ready()
    open(d)
    d.send("DATA")
    d.feed({ _tag: "End", why: "eof" })
    expect(d.actions.at(-1)).toEqual({ _tag: "DropMessage" })
  })
})

describe("BDAT (RFC 3030)", () => {
  it("reads a chunk without MAIL, then refuses it with 503 5.5.1 (its bytes are not commands)", () => {
    const d = ready()
    d.send("BDAT 10 LAST")
    expect(d.actions.at(-1)).toEqual({ _tag: "ReceiveChunk", size: 10, last: true, keep: false })
    expect(d.endContent()).toEqual(["503 5.5.1 Need MAIL command"])
  })

  it("reads a chunk without recipients, then refuses it with 554 5.5.1", () => {
    const d = ready()
    d.send("MAIL FROM:<a@client.test>")
    d.send("BDAT 3")
    expect(d.endContent()).toEqual(["554 5.5.1 No valid recipients"])
  })

  it("acknowledges each chunk with 250 2.0.0 and its size, and delivers at LAST", () => {
    const d = ready()
    open(d)
    d.send("BDAT 100")
    expect(d.actions.slice(-2)).toEqual([{ _tag: "OpenMessage" }, { _tag: "ReceiveChunk", size: 100, last: false, keep: true }])
    expect(d.endContent()).toEqual(["250 2.0.0 100 octets received"])
    d.send("BDAT 5 LAST")
    expect(d.actions.filter((a) => a._tag === "OpenMessage")).toHaveLength(1)
    expect(d.endContent()).toEqual(["250 2.0.0 Ok: queued as TX1"])
  })

  it("takes BDAT 0 LAST as the end of the message; a BDAT after LAST gets 503 5.5.1 (2)", () => {
    const d = ready()
    open(d)
    d.send("BDAT 10")
    d.endContent()
    d.send("BDAT 0 LAST")
    expect(d.actions.at(-1)).toEqual({ _tag: "ReceiveChunk", size: 0, last: true, keep: true })
    expect(d.endContent()).toEqual(["250 2.0.0 Ok: queued as TX1"])
    d.send("BDAT 1")
    expect(d.endContent()).toEqual(["503 5.5.1 Need MAIL command"])
  })

  it("refuses DATA, RCPT and STARTTLS in the middle of a BDAT transfer with 503 5.5.1", () => {
    const d = ready({ plain: true, session: { user: "alice" } })
    open(d)
    d.send("BDAT 1")
    d.endContent()
    expect(d.send("DATA")).toEqual(["503 5.5.1 DATA not allowed after BDAT"])
    expect(d.send("RCPT TO:<c@dest.test>")).toEqual(["503 5.5.1 RCPT not allowed during BDAT transfer"])
    expect(d.send("STARTTLS")).toEqual(["503 5.5.1 STARTTLS not allowed during BDAT transfer"])
  })

  it("RSET in the middle of a transfer drops the message", () => {
    const d = ready()
    open(d)
    d.send("BDAT 1")
    d.endContent()
    expect(d.send("RSET")).toEqual(["250 2.0.0 Ok"])
    expect(d.actions.at(-1)).toEqual({ _tag: "DropMessage" })
    expect(d.send("BDAT 1 LAST")).toEqual([])
    expect(d.endContent()).toEqual(["503 5.5.1 Need MAIL command"])
  })

  it("ends the transaction at a chunk that overflows the size (552 5.3.4): later chunks get 503", () => {
    const d = ready()
    open(d)
    d.send("BDAT 20000")
    expect(d.endContent({ tooBig: true })).toEqual(["552 5.3.4 Message size exceeds fixed maximum message size"])
    d.send("BDAT 1 LAST")
    expect(d.endContent()).toEqual(["503 5.5.1 Need MAIL command"])
  })
})
