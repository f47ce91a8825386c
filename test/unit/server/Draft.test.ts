import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Message from "../../../src/pipeline/Message.ts"
import type * as Draft from "../../../src/server/Draft.ts"
import { Contexts } from "smtp-bridge/testing"

const draftOf = (text: string) => Contexts.data(text).draft
const rendered = (d: Draft.Draft, text: string) =>
  Effect.map(Message.collect(Message.render(Contexts.data(text).message, d.result())), (b) => new TextDecoder().decode(b))

const text = "Received: x\r\nSubject: one\r\nX-Tag: a\r\nX-Tag: b\r\n\r\nbody\r\n"

describe("message edits (Draft)", () => {
  it.effect("changes the n-th field of a name, removes one with no value, inserts by position", () =>
    Effect.gen(function*() {
      const ctx = Contexts.data(text)
      const { draft } = ctx
      ctx.edit.changeHeader("x-tag", 2, "B")
      ctx.edit.changeHeader("X-Tag", 1, undefined)
      ctx.edit.insertHeader(1, "X-Inserted", "yes")
      ctx.edit.changeHeader("X-Missing", 1, "added at the end")
      ctx.addHeader("X-Top", "on top")
      expect(yield* Effect.map(Message.collect(Message.render(ctx.message, draft.result())), (b) => new TextDecoder().decode(b))).toBe(
        "X-Top: on top\r\nReceived: x\r\nX-Inserted: yes\r\nSubject: one\r\nX-Tag: B\r\nX-Missing: added at the end\r\n\r\nbody\r\n"
      )
      expect(Message.renderedSize(ctx.message, draft.result())).toBe(
        "X-Top: on top\r\nReceived: x\r\nX-Inserted: yes\r\nSubject: one\r\nX-Tag: B\r\nX-Missing: added at the end\r\n\r\nbody\r\n".length
      )
    }))

  it("refuses CR or LF that is not a fold, and a name with a colon or a space", () => {
    const ctx = Contexts.data(text)
    expect(() => ctx.edit.changeHeader("Subject", 1, "x\r\nBcc: v@example.net")).toThrow(Message.EditError)
    expect(() => ctx.edit.insertHeader(0, "X-A: b", "c")).toThrow(/invalid header field name/)
    expect(() => ctx.addHeader("Bad Name", "c")).toThrow(/invalid header field name/)
    expect(() => ctx.edit.changeHeader("Subject", 0, "x")).toThrow(/index 0/)
    expect(() => ctx.edit.changeHeader("Subject", 1, "a\r\n \r\n b")).toThrow(/nothing on it/)
    expect(() => ctx.edit.insertHeader(0, "X-A", "a\r\n\t")).toThrow(/nothing on it/)
    // A fold (CRLF then a blank) is kept as the author wrote it.
    ctx.edit.changeHeader("Subject", 1, "a\r\n\tb")
    expect(ctx.edit.headers().find((h) => h.name === "Subject")?.value).toBe("a\tb")
  })

  it("edits the envelope: sender, recipients added once, removed case-insensitively, bounded by maxRecipients", () => {
    const d = draftOf(text)
    d.edits.setSender("<>")
    expect(d.mailFrom()).toBeNull()
    d.edits.setSender("bounce@example.org")
    d.edits.addRecipient("<carol@example.net>")
    d.edits.addRecipient("CAROL@example.net")
    expect(d.edits.removeRecipient("<BOB@EXAMPLE.NET>")).toBe(true)
    expect(d.recipients().map((r) => r.mailbox.address)).toEqual(["carol@example.net"])
    expect(d.mailFrom()?.address).toBe("bounce@example.org")
    expect(() => d.edits.addRecipient("no address")).toThrow(/not an address/)
    expect(() => {
      for (let i = 0; i < 10_000; i++) d.edits.addRecipient(`r${i}@example.net`)
    }).toThrow(/limits.maxRecipients/)
    expect(d.recipients()).toHaveLength(100)
  })

  it.effect("replaces the body through a writer; bare LF and CR (split across writes) become CRLF", () =>
    Effect.gen(function*() {
      const d = draftOf(text)
      const w = d.edits.replaceBody()
      yield* w.write(new TextEncoder().encode("one\ntwo\r"))
      yield* w.write(new TextEncoder().encode("\nthree\rfour\r"))
      expect(d.result().body).toBeUndefined()
      yield* w.end()
      expect(yield* rendered(d, text)).toBe("Received: x\r\nSubject: one\r\nX-Tag: a\r\nX-Tag: b\r\n\r\none\r\ntwo\r\nthree\r\nfour\r\n")
      expect(new TextDecoder().decode(yield* Message.collect(d.edits.body()))).toBe("one\r\ntwo\r\nthree\r\nfour\r\n")
      yield* d.dispose
    }))

  it.effect("gives the original body without the blank line", () =>
    Effect.gen(function*() {
      const d = draftOf(text)
      expect(new TextDecoder().decode(yield* Message.collect(d.edits.body()))).toBe("body\r\n")
    }))

  it.effect("gives the message as the edits so far make it (size and bytes), a snapshot later edits do not change", () =>
    Effect.gen(function*() {
      const ctx = Contexts.data(text)
      const before = ctx.edit.rendered()
      ctx.edit.changeHeader("Subject", 1, "two")
      const w = ctx.edit.replaceBody()
      yield* w.write(new TextEncoder().encode("new body\r\n"))
      yield* w.end()
      const after = ctx.edit.rendered()
      ctx.addHeader("X-Later", "not in the snapshot")
      const decode = (m: { readonly stream: () => Parameters<typeof Message.collect>[0] }) => Effect.map(Message.collect(m.stream()), (b) => new TextDecoder().decode(b))
      expect(yield* decode(before)).toBe(text)
      expect(before.size).toBe(text.length)
      const edited = "Received: x\r\nSubject: two\r\nX-Tag: a\r\nX-Tag: b\r\n\r\nnew body\r\n"
      expect(yield* decode(after)).toBe(edited)
      expect(after.size).toBe(edited.length)
      yield* ctx.draft.dispose
    }))
})
